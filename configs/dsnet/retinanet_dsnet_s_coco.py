# RetinaNet, DS-Net-S, FPN, COCO 2017, 1x, AdamW.
# Backbone init_cfg=None (from scratch). ImageNet weights: checkpoints/dsnet_s_in1k_backbone.pth from
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
# then model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=THAT, prefix='backbone.')))
_base_ = [
    '../_base_/models/retinanet_dsnet_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    '../_base_/schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(backbone=dict(arch='small'))
