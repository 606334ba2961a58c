# UperNet, VOLO-D1, ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images. The paper reports
# UperNet (54.3 mIoU for its best model) but released no segmentation recipe; this is Swin's
# UperNet recipe: AdamW lr 6e-5, weight decay 0.01 (not on norms, biases, the position
# embedding), 1500 linear warmup iterations, then linear decay.
# Backbone weights (init_cfg): checkpoints/volo_d1_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d1_224_84.2.pth.tar checkpoints/volo_d1_in1k.pth
_base_ = [
    '../_base_/models/upernet_volo.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/upernet_adamw_160k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))

# no weight decay on the position embedding either.
# Layer-wise lr decay (timm's VOLO grouping: one id per block, neck and heads at the full lr) at the
# rates of mmseg's BEiT UperNet configs (mmseg 1.2.2 configs/beit/: BEiT-B, 12 blocks, 0.9; BEiT-L,
# 24 blocks, 0.95): 0.9 for D1 (18 blocks), 0.95 for D2-D5 (24-48 blocks). The choice by depth, and
# using the segmentation rates for detection too, is this package's. lr and weight decay stay Swin's.
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, decay_type='layer_wise', custom_keys={'pos_embed': dict(decay_mult=0.)}))
train_dataloader = dict(batch_size=2)
