# Demo: UperNet with a DS-Net-T backbone, trained FROM RANDOM INITIALISATION on the synthetic textured
# shapes of tools/misc/make_demo_ade.py (ADE20K layout, 4 classes: background and three texture/colour
# classes), small enough to train and evaluate on a 2-core CPU in a few minutes.
# configs/demo/README.md lists the commands and the measured results.
#
#   python tools/misc/make_demo_ade.py --out data/demo_ade
#   python tools/train.py configs/demo/upernet_dsnet_t_demo.py --work-dir work_dirs/seg_demo
#   python tools/test.py configs/demo/upernet_dsnet_t_demo.py \
#       "$(cat work_dirs/seg_demo/last_checkpoint)" --work-dir work_dirs/seg_demo --show-dir vis
#
# Another data folder: `data_root` is expanded into the dataloaders when this file is read, so
# overriding `data_root` alone changes nothing; override the derived keys:
#   --cfg-options train_dataloader.dataset.data_root=D/ val_dataloader.dataset.data_root=D/ \
#       test_dataloader.dataset.data_root=D/
#
# What is shrunk relative to ../dsnet/upernet_dsnet_t_ade20k.py, and why (all of it for CPU speed;
# the model stays UperNet = DS-Net-T (full depth and width) + UPerHead (PPM + FPN) + FCN aux head):
#   * input 64x64 (the generator's size, no resize or crop) instead of 512x512 crops: 64x fewer
#     pixels; the stage-4 map is 2x2, so the PPM pools at scales (1, 2) instead of (1, 2, 3, 6);
#   * UPerHead channels 512 -> 64, FCN auxiliary head 256 -> 32: the default widths are sized for
#     150 classes at 512x512, 4 classes need little width and the 3x3 head convs cost CPU time;
#   * BN instead of SyncBN (one process), no stochastic depth (drop_path_rate 0: a short schedule
#     from scratch), no photometric distortion or random resize (only flips);
#   * schedule: 800 iterations of batch 8 (16 epochs of 400 images), AdamW lr 1e-3 (a from-scratch
#     value, the ADE20K recipe's 6e-5 is for fine-tuning ImageNet weights) with 100 warm-up
#     iterations and poly decay; no pretrained weights anywhere (init_cfg=None).
_base_ = [
    '../_base_/models/upernet_dsnet.py',
    'mmseg::_base_/default_runtime.py',
]

classes = ('background', 'stripes', 'checker', 'dots')
palette = [[120, 120, 120], [230, 25, 75], [60, 180, 75], [0, 130, 200]]
num_classes = len(classes)
norm_cfg = dict(type='BN', requires_grad=True)
max_iters = 800  # the scheduler's end, val and checkpoint intervals follow: change it here

# ------------------------------------------------------------------ model
img_size = 64  # the generator's default --img-size
model = dict(
    data_preprocessor=dict(size=(img_size, img_size)),  # pads a batch to this size (no-op here)
    # random initialisation (the base config loads ImageNet weights), no network and no weight file;
    # the reference's attention dropout 0.1, the setting of the measured demo runs
    backbone=dict(arch='tiny', drop_path_rate=0., attn_drop_rate=0.1, norm_cfg=norm_cfg, init_cfg=None),
    decode_head=dict(channels=64, pool_scales=(1, 2), num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(channels=32, num_classes=num_classes, norm_cfg=norm_cfg))

# ------------------------------------------------------------------ data
dataset_type = 'BaseSegDataset'  # ADE20KDataset's metainfo is fixed to the 150 ADE classes
data_root = 'data/demo_ade/'
dataset_cfg = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **dataset_cfg,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **dataset_cfg,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# ------------------------------------------------------------------ schedule
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-5, power=1.0, begin=100, end=max_iters, by_epoch=False),
]
auto_scale_lr = dict(enable=False, base_batch_size=8)  # one process x 8 images (--auto-scale-lr)

# ------------------------------------------------------------------ runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
