# Demo: a DS-Net-T image classifier (mmpretrain ImageClassifier: DS-Net-T + global average pooling +
# LinearClsHead), trained FROM RANDOM INITIALISATION on the synthetic shapes of
# tools/misc/make_demo_cls.py (ImageFolder layout, 4 classes, chance is 25% top-1), small enough to
# train and evaluate on a 2-core CPU in a few minutes. configs/demo/README.md lists the commands and
# the measured results.
#
#   python tools/misc/make_demo_cls.py --out data/demo_cls
#   python tools/train.py configs/demo/dsnet_t_cls_demo.py --work-dir work_dirs/cls_demo
#   python tools/test.py configs/demo/dsnet_t_cls_demo.py \
#       "$(cat work_dirs/cls_demo/last_checkpoint)" --work-dir work_dirs/cls_demo
#
# Another data folder: --cfg-options train_dataloader.dataset.data_root=D \
#   val_dataloader.dataset.data_root=D test_dataloader.dataset.data_root=D
#
# What is shrunk relative to ../dsnet/dsnet_t_in1k.py, and why (CPU speed; the model is the full
# DS-Net-T classifier):
#   * input 32x32 (the generator's size, no resize or crop) instead of 224x224: 49x fewer pixels;
#   * no RandAugment, Mixup, CutMix, random erasing or label smoothing (only flips), no stochastic
#     depth: they regularise a 300-epoch ImageNet run and only slow down a short run on 4 classes;
#   * schedule: 30 epochs of 800 images at batch 32, AdamW lr 1e-3, weight decay 0.05, 50 warm-up
#     iterations then cosine decay; no pretrained weights (init_cfg=None).
_base_ = [
    '../_base_/models/dsnet_classifier.py',
    'mmpretrain::_base_/default_runtime.py',
]

num_classes = 4
max_epochs = 30  # the scheduler's end, val and checkpoint intervals follow: change it here

# ------------------------------------------------------------------ model
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.),  # init_cfg=None: random initialisation
    head=dict(num_classes=num_classes))

# ------------------------------------------------------------------ data
# classes are the sub-folder names, sorted: circle, rectangle, ring, triangle
data_root = 'data/demo_cls'
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=50,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# ------------------------------------------------------------------ schedule
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=32)

# ------------------------------------------------------------------ runtime
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs, max_keep_ckpts=1, save_last=True))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
