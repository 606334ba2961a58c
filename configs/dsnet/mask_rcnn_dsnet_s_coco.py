# Mask R-CNN, DS-Net-S, FPN, COCO 2017, 1x (12 epochs), AdamW, 8 GPUs x 2 images.
_base_ = [
    '../_base_/models/mask_rcnn_dsnet_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../_base_/schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(backbone=dict(arch='small'))
