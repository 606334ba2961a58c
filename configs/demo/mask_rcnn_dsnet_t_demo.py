# Demo: Mask R-CNN + FPN with a DS-Net-T backbone, trained FROM RANDOM INITIALISATION on the synthetic
# shapes dataset of tools/misc/make_demo_coco.py, small enough to train and evaluate on a 2-core CPU in
# about 10 minutes. `make demo` runs it (README, "Two commands"); results: docs/measurements.md.
#
#   python tools/misc/make_demo_coco.py --out data/demo_coco
#   python tools/train.py configs/demo/mask_rcnn_dsnet_t_demo.py --work-dir work_dirs/demo
#   python tools/test.py configs/demo/mask_rcnn_dsnet_t_demo.py \
#       "$(cat work_dirs/demo/last_checkpoint)" --work-dir work_dirs/demo
#
# Another data folder: `data_root` is expanded into the dataset and evaluator paths when this file is
# read, so overriding `data_root` alone on the command line changes nothing; override the derived keys:
#   --cfg-options train_dataloader.dataset.data_root=D/ val_dataloader.dataset.data_root=D/ \
#       test_dataloader.dataset.data_root=D/ val_evaluator.ann_file=D/annotations/instances_val.json \
#       test_evaluator.ann_file=D/annotations/instances_val.json
#
# What is shrunk relative to mmdet's mask-rcnn_r50_fpn_1x_coco, and why (all of it for CPU speed on
# 128x128 images with at most 4 objects; the model stays Mask R-CNN = DS-Net-T + FPN + RPN + RoI
# box/mask heads):
#   * input 128x128 (the generator's size) instead of 1333x800: ~65x fewer pixels;
#   * FPN/RPN/RoI channels 256 -> 64, box-head FCs 1024 -> 256, mask head 4 -> 2 convs: the heads
#     would otherwise cost more than the backbone at this input size, and 4 classes need little width;
#   * anchor scale 8 -> 4 (base anchors 16..256 px): objects here are 20-55 px, the default smallest
#     anchor (32 px) matches 20 px objects poorly;
#   * RPN proposals 2000/1000 -> 300/300 (train) and 1000 -> 100 (test), RoI samples 512 -> 128 per
#     image: at most 4 objects per image need far fewer, and RoIAlign on CPU is expensive;
#   * schedule: AdamW (lr 1e-3, a from-scratch value) with linear warm-up and a cosine decay, instead of
#     SGD 0.02 with steps; no pretrained weights anywhere (init_cfg=None: the base config's ImageNet
#     weights are switched off, so the demo needs no download; the log warns that the backbone trains
#     from scratch).
_base_ = [
    '../_base_/models/mask_rcnn_dsnet_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
]

img_size = 128
num_classes = 4
classes = ('circle', 'rectangle', 'triangle', 'ring')
channels = 64  # FPN / RPN / RoI feature width (mmdet default 256)

# ------------------------------------------------------------------ model
model = dict(
    # random initialisation (the base config loads ImageNet weights), no network and no weight file;
    # plain BN (one process) and the reference's attention dropout 0.1, the settings of the measured
    # demo runs (the base config uses SyncBN and no attention dropout for 8-GPU COCO training)
    backbone=dict(arch='tiny', attn_drop_rate=0.1, norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None),
    neck=dict(out_channels=channels),
    rpn_head=dict(
        in_channels=channels,
        feat_channels=channels,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(num_convs=2, in_channels=channels, conv_out_channels=channels,
                       num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=600, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(max_per_img=20)))

# ------------------------------------------------------------------ data
data_root = 'data/demo_coco/'
metainfo = dict(classes=classes)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric=['bbox', 'segm'],
    format_only=False)
test_evaluator = val_evaluator

# ------------------------------------------------------------------ schedule
max_epochs = 8
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=4)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=4)

# ------------------------------------------------------------------ runtime
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=4, max_keep_ckpts=1, save_last=True))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
