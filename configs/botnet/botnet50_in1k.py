# BoT50, ImageNet-1K, 224x224, 100 epochs: the recipe of the independent BoT50 reproduction
# BIGBALLON/distribuuuu (config/botnet50.yaml, distribuuuu/utils.py; 77.6% top-1 there, not measured
# here): SGD lr 0.2 at total batch 256 (8 GPUs x 32), momentum 0.9, Nesterov, weight decay 5e-5;
# 5 linear warm-up epochs from 0.1 x lr (WARMUP_FACTOR 0.1), multiplied with a half-period cosine
# over the 100 epochs to 0, both stepped per epoch; RandomResizedCrop 224 + flip, no label smoothing;
# test: resize 256, center crop 224 (mmpretrain's imagenet_bs32 pipelines are these).
# One departure, this package's choice: the relative-position tables get no weight decay
# (distribuuuu decays every parameter); they are position embeddings, which mmdet's and mmseg's
# Swin configs keep out of weight decay ('relative_position_bias_table': decay_mult 0).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256_coslr.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='BoTNet', arch='50', img_size=224, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-5),
    paramwise_cfg=dict(custom_keys={'rel_pos_': dict(decay_mult=0.)}))
param_scheduler = [
    # factor 0.1 + 0.9 * epoch / 5 for epochs 0-4, 1 from epoch 5 (mmengine's LinearLR reaches its
    # end factor at step end - 1, hence end=6)
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=6),
    dict(type='CosineAnnealingLR', T_max=100, eta_min=0., by_epoch=True, begin=0, end=100),
]
train_cfg = dict(by_epoch=True, max_epochs=100)
auto_scale_lr = dict(base_batch_size=256)
