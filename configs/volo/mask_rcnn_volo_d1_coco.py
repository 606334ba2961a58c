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
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.)}))
