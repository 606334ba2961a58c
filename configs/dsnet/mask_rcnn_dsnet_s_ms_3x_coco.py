# DS-Net-S Mask R-CNN, 3x (36 epochs) with multi-scale training.
# - pipeline: mmdet's R50 ms-3x (configs/common/ms-poly_3x_coco-instance.py): a random shorter side in
#   [640, 800]. mmdet's Swin 3x adds a random-crop branch (ms-crop); not used here, this package's
#   choice (one pipeline for every backbone's 3x config).
# - schedule: mmdet's Swin-T Mask R-CNN 3x (configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py):
#   AdamW lr 1e-4, weight decay 0.05 (../_base_/schedules/adamw_1x.py), 1000 linear warm-up iterations,
#   lr x0.1 at epochs 27 and 33 (mmdet's R50 3x: the same steps as 12 epochs of a 3x RepeatDataset).
# Backbone weights (init_cfg): checkpoints/dsnet_s_in1k_backbone.pth, written by
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
_base_ = './mask_rcnn_dsnet_s_coco.py'

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1)
]
# mmdet's R50 multi-scale 3x training pipeline, step for step (mmdet 3.3.0
# configs/common/ms-poly_3x_coco-instance.py): a random shorter side in [640, 800] (long side at most
# 1333), polygon masks (poly2mask=False), flip
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='RandomResize', scale=[(1333, 640), (1333, 800)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
