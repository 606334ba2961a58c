# Mask R-CNN, VOLO-D1, FPN, COCO 2017, 1x (12 epochs), 8 GPUs x 2 images. VOLO has no published
# detection results or recipe: mmdet's Swin-T Mask R-CNN 1x schedule (../_base_/schedules/adamw_1x.py:
# AdamW lr 1e-4, weight decay 0.05, not on norms), with the position embedding kept out of weight
# decay as Swin's absolute_pos_embed.
# Backbone weights (init_cfg): checkpoints/volo_d1_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d1_224_84.2.pth.tar checkpoints/volo_d1_in1k.pth
_base_ = [
    '../_base_/models/mask_rcnn_volo_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../_base_/schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(backbone=dict(arch='d1'))
# Layer-wise lr decay (timm's VOLO grouping: one id per block, neck and heads at the full lr) at the
# rates of mmseg's BEiT UperNet configs (mmseg 1.2.2 configs/beit/: BEiT-B, 12 blocks, 0.9; BEiT-L,
# 24 blocks, 0.95): 0.9 for D1 (18 blocks), 0.95 for D2-D5 (24-48 blocks). The choice by depth, and
# using the segmentation rates for detection too, is this package's. lr and weight decay stay Swin's.
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, decay_type='layer_wise', custom_keys={'pos_embed': dict(decay_mult=0.)}))
