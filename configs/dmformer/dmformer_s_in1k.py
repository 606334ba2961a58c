# DMFormer-S, ImageNet-1K, 224x224, 300 epochs: the paper's AdamW lr 1e-3 at total batch 1024
# (8 GPUs x 128) with cosine decay; Swin's augmentation (RandAugment, Mixup, CutMix, random erasing,
# label smoothing 0.1), 20 warmup epochs, weight decay 0.05 (not on norms, biases, layer scales),
# gradient clipping at 5.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='DMFormer', arch='s', out_indices=(3, ), drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

train_dataloader = dict(batch_size=128)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
auto_scale_lr = dict(base_batch_size=1024)
