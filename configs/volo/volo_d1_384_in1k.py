# VOLO-D1 at 384x384: the official high-resolution fine-tune of the 224 model (sail-sg/volo README,
# "Finetune on 384 with 40 epoch based on the pretrained checkpoint on 224": --epochs 30 --lr 8.0e-6
# --min-lr 4.0e-6 --weight-decay 1.0e-8 --warmup-epochs 5 -b 64, with main.py's defaults
# --warmup-lr 1e-6 and --cooldown-epochs 10): AdamW, 5 linear warm-up epochs from 1e-6 to 8e-6,
# cosine to 4e-6 at epoch 30, then 10 cool-down epochs at 4e-6 (40 in all; timm's scheduler runs
# epochs + cooldown_epochs), weight decay 1e-8, 64 images per GPU. Starts from the 224 classifier
# (backbone and head); the backbone's 24x24 position embedding is interpolated from the checkpoint's
# 14x14 when loading. Test: resize 384, center crop 384 (crop_pct 1.0).
# Weights: checkpoints/volo_d1_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d1_224_84.2.pth.tar checkpoints/volo_d1_in1k.pth
# (a missing file stops training at start-up with that command: PretrainedCheckHook).
_base_ = './volo_d1_in1k.py'

img_size = 384
init_checkpoint = 'checkpoints/volo_d1_in1k.pth'
# `load_from` would skip the differently shaped position embedding, so the parts load through
# their init_cfg (the backbone interpolates its position embedding)
model = dict(
    backbone=dict(
        img_size=img_size,
        # _delete_: replaces the base's init_cfg=None
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=init_checkpoint, prefix='backbone.')),
    head=dict(init_cfg=dict(type='Pretrained', checkpoint=init_checkpoint, prefix='head.')))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10, magnitude_level=9,
         magnitude_std=0.5, hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02, max_area_ratio=1 / 3,
         fill_color=[103.53, 116.28, 123.675], fill_std=[57.375, 57.12, 58.395]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

lr, warmup_lr, min_lr = 8e-6, 1e-6, 4e-6
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=1e-8))
# stepped once per epoch, as timm's CosineLRScheduler in main.py (t_in_epochs): epochs 0-4 get timm's
# warm-up, 1e-6 + epoch * (8e-6 - 1e-6) / 5 (mmengine's LinearLR reaches lr at step end - 1, hence
# end=6: lr 8e-6 at epoch 5); timm's cosine runs over epochs 0-30 with the warm-up in place of its
# first 5 epochs, this one over epochs 5-30, reaching 4e-6 at epoch 30 (T_max=25 steps; end=31 lets
# it take the last one). Epochs 30-39 stay at eta_min: the 10 cool-down epochs.
param_scheduler = [
    dict(type='LinearLR', start_factor=warmup_lr / lr, by_epoch=True, begin=0, end=6),
    dict(type='CosineAnnealingLR', eta_min=min_lr, T_max=25, by_epoch=True, begin=5, end=31),
]
train_cfg = dict(max_epochs=40)
auto_scale_lr = dict(base_batch_size=512)
custom_hooks = [dict(type='PretrainedCheckHook')]
