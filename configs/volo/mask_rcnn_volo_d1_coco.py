# Mask R-CNN, VOLO-D1, FPN, COCO 2017, 1x (12 epochs), AdamW lr 1e-4, weight decay 0.05 (not on
# norms, biases, the position embedding), 8 GPUs x 2 images. VOLO has no published detection
# results or recipe; this is the Swin/PVT detection recipe.
# Backbone init_cfg=None (from scratch). ImageNet weights: checkpoints/volo_d1_in1k.pth from
#   python tools/model_converters/volo_to_mmvit.py d1_224_84.2.pth.tar checkpoints/volo_d1_in1k.pth
# then model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=THAT, prefix='backbone.')))
_base_ = [
    '../_base_/models/mask_rcnn_volo_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../_base_/schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(backbone=dict(arch='d1'))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.)}))
