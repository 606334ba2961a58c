# DS-Net-T, ImageNet-1K, 224x224, 300 epochs, DeiT-style recipe of the DS-Net reference code
# (SteveTsui/DS-Net main.py, PaddleClas DSNet_*.yaml): AdamW, lr 5e-4 x total batch / 512 (1e-3 at
# 8 GPUs x 128), weight decay 0.05 (not on norms, biases or other 1-D parameters), 5 linear warm-up
# epochs from 1e-6, cosine decay to 1e-5; RandAugment rand-m9-mstd0.5-inc1, Mixup 0.8, CutMix 1.0,
# label smoothing 0.1, random erasing 0.25, drop path 0.1 on the reference's per-stage schedule,
# model EMA (decay 0.99996 per iteration, BN statistics averaged too, as timm's ModelEma) and
# repeated augmentation (3 repeats, epoch length = dataset size), as SteveTsui/DS-Net main.py's
# defaults. Evaluation: bicubic resize of the short side to 256 and a 224 centre crop (DeiT's;
# PaddleClas uses 248). configs/dsnet/README.md explains each choice and what differs from the
# reference (EMAHook validates the EMA weights; the reference evaluates the raw ones).
_base_ = [
    '../_base_/models/dsnet_classifier.py',
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.1, drop_path_schedule='per_stage'),
    head=dict(
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

train_dataloader = dict(batch_size=128, sampler=dict(type='RepeatAugSampler', num_repeats=3, shuffle=True))
custom_hooks = [dict(type='EMAHook', momentum=4e-5, update_buffers=True, priority='ABOVE_NORMAL')]
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5),
]
auto_scale_lr = dict(base_batch_size=1024)
