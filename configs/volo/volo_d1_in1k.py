# VOLO-D1, ImageNet-1K, 224x224, the official recipe (sail-sg/volo README / main.py): AdamW lr 1.6e-3
# at total batch 1024 (8 GPUs x 128), weight decay 0.05, 20 warmup epochs from 1e-6, cosine to
# 1e-5 at epoch 300, then 10 cooldown epochs at 1e-5 (310 in all); RandAugment m9-mstd0.5,
# random erasing 0.25, label smoothing 0.1, no Mixup/CutMix; drop path 0.1. Objective as the
# reference's `--token-label` training (TokenLabelCrossEntropy, dense weight 0.5) with MixToken
# (Beta(1, 1) box of 16x16-pixel token cells, every batch): without token-label maps the dense
# target of every token is the image's (smoothed) label, as main.py's create_token_label_target;
# attach NFNet-F6 maps as `gt_token_label` per sample to train with them instead. Test: bicubic
# resize of the shorter edge to 224 / 0.96 = 233, center crop 224 (timm's crop_pct 0.96).
_base_ = [
    '../_base_/models/volo_classifier.py',
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=233, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
# MixToken after the normalisation; it writes its box into the data samples for VOLOHead
data_preprocessor = dict(type='MixTokenDataPreprocessor', mix_token=dict(type='MixToken', alpha=1.0, token_stride=16))
train_dataloader = dict(batch_size=128)
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(lr=1.6e-3),
    paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.), 'cls_token': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 1.6e-3, by_epoch=True, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20, end=300),
]
train_cfg = dict(max_epochs=310)
