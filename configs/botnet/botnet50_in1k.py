# BoT50, ImageNet-1K, 224x224, 100 epochs: mmpretrain's ResNet-50 recipe with cosine decay (SGD
# lr 0.1, momentum 0.9, weight decay 1e-4, total batch 256 = 8 GPUs x 32), the recipe of the
# independent BoT50 reproduction (BIGBALLON/distribuuuu: 77.6% top-1 there, not measured here).
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
# no weight decay on the relative-position tables
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'rel_pos_': dict(decay_mult=0.)}))
