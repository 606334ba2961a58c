# Mask R-CNN, DS-Net-S, FPN, COCO 2017, 1x (12 epochs), AdamW, 8 GPUs x 2 images.
# Backbone weights (init_cfg): checkpoints/dsnet_s_in1k_backbone.pth, written by
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
_base_ = [
    '../_base_/models/mask_rcnn_dsnet_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../_base_/schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(backbone=dict(arch='small'))
