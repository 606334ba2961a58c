# Backbone init_cfg=None (from scratch). ImageNet weights: checkpoints/dsnet_b_in1k_backbone.pth from
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_base_pretrained.pdparams checkpoints/dsnet_b_in1k.pth
# then model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=THAT, prefix='backbone.')))
_base_ = './mask_rcnn_dsnet_s_coco.py'
model = dict(backbone=dict(arch='base', drop_path_rate=0.2))
