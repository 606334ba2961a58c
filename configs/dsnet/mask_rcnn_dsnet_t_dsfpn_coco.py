# Backbone init_cfg=None (from scratch). ImageNet weights: checkpoints/dsnet_t_in1k_backbone.pth from
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_tiny_pretrained.pdparams checkpoints/dsnet_t_in1k.pth
# then model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=THAT, prefix='backbone.')))
_base_ = './mask_rcnn_dsnet_s_dsfpn_coco.py'
model = dict(backbone=dict(arch='tiny'))
