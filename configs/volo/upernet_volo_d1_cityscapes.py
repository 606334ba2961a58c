# UperNet, VOLO-D1, Cityscapes, 512x1024 crops, 80k iterations, 8 GPUs x 2 images; the ADE20K
# recipe over 80k iterations, and sliding-window testing with 512x1024 windows as the paper did
# (84.3 mIoU for its best model, sail-sg/volo#4). The position embedding is interpolated to each
# window's 32x64 grid.
# Backbone weights (init_cfg): checkpoints/volo_d1_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d1_224_84.2.pth.tar checkpoints/volo_d1_in1k.pth
_base_ = [
    '../_base_/models/upernet_volo.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/upernet_adamw_80k.py',
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 682)))

# no weight decay on the position embedding either.
# Layer-wise lr decay (timm's VOLO grouping: one id per block, neck and heads at the full lr) at the
# rates of mmseg's BEiT UperNet configs (mmseg 1.2.2 configs/beit/: BEiT-B, 12 blocks, 0.9; BEiT-L,
# 24 blocks, 0.95): 0.9 for D1 (18 blocks), 0.95 for D2-D5 (24-48 blocks). The choice by depth, and
# using the segmentation rates for detection too, is this package's. lr and weight decay stay Swin's.
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, decay_type='layer_wise', custom_keys={'pos_embed': dict(decay_mult=0.)}))
train_dataloader = dict(batch_size=2)
