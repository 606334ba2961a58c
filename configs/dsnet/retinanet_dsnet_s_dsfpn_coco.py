# RetinaNet, DS-Net-S, DS-FPN: dual-stream blocks on the C4 and C5 laterals (before the top-down
# path), global streams on the 1/32 grid. Cost and options: configs/dsnet/README_dsfpn.md.
# Backbone init_cfg=None (from scratch). ImageNet weights: checkpoints/dsnet_s_in1k_backbone.pth from
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
# then model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=THAT, prefix='backbone.')))
_base_ = './retinanet_dsnet_s_coco.py'
model = dict(neck=dict(type='DSFPN', ds_levels=(-2, -1), position='lateral'))
