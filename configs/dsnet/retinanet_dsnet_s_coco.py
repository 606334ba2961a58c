# RetinaNet, DS-Net-S, FPN, COCO 2017, 1x, AdamW.
_base_ = [
    '../_base_/models/retinanet_dsnet_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    '../_base_/schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(backbone=dict(arch='small'))
