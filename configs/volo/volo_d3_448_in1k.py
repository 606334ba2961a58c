# VOLO-D3 at 448x448: the high-resolution fine-tune with 30 images per GPU (official); 28x28
# position embedding. Test: resize 448, center crop 448 (crop_pct 1.0).
_base_ = './volo_d1_384_in1k.py'

img_size = 448
init_checkpoint = 'checkpoints/volo_d3_in1k.pth'  # volo_to_mmvit.py d3_224_85.4.pth.tar checkpoints/volo_d3_in1k.pth
model = dict(
    backbone=dict(arch='d3', img_size=img_size, drop_path_rate=0.5, init_cfg=dict(checkpoint=init_checkpoint)),
    head=dict(in_channels=512, init_cfg=dict(checkpoint=init_checkpoint)))
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
train_dataloader = dict(batch_size=30, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
auto_scale_lr = dict(base_batch_size=240)
