# VOLO-D1 at 384x384: the official high-resolution fine-tune of a 224 model (30 epochs, AdamW lr
# 8e-6 to 4e-6, weight decay 1e-8, 5 warmup epochs, 64 images per GPU). The backbone's 24x24
# position embedding is interpolated from a 224 checkpoint's 14x14 when loading. Test: resize 384,
# center crop 384 (crop_pct 1.0).
_base_ = './volo_d1_in1k.py'

img_size = 384
model = dict(backbone=dict(img_size=img_size))
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

optim_wrapper = dict(optimizer=dict(lr=8e-6, weight_decay=1e-8))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=4e-6, by_epoch=True, begin=5, end=30),
]
train_cfg = dict(max_epochs=30)
auto_scale_lr = dict(base_batch_size=512)
# fine-tune from a 224 classifier (CKPT): `load_from` would skip the differently shaped position
# embedding, so load the parts instead (the backbone interpolates its position embedding):
# model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=CKPT, prefix='backbone.')),
#              head=dict(init_cfg=dict(type='Pretrained', checkpoint=CKPT, prefix='head.')))
