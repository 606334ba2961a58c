# BoT50 Mask R-CNN, mmdet's R50 multi-scale 3x recipe (configs/mask_rcnn/mask-rcnn_r50_fpn_ms-poly-3x_coco.py
# = configs/common/ms-poly_3x_coco-instance.py): its training pipeline (random shorter side in [640, 800]),
# SGD lr 0.02 at batch 16, 500 linear warm-up iterations, lr x0.1 after 27 and 33 of 36 epochs (mmdet
# runs 12 epochs of a 3x RepeatDataset with steps at 9 and 11: the same iterations).
# Weights: init_cfg expects checkpoints/botnet50_from_resnet50_800x1344.pth
# (set in mask_rcnn_botnet50_coco.py),
# converted from a torchvision, timm or mmpretrain ResNet-50 (R50.pth) with
#   python tools/model_converters/resnet_to_botnet.py R50.pth \
#     checkpoints/botnet50_from_resnet50_800x1344.pth --arch 50 --img-size 800 1344
_base_ = './mask_rcnn_botnet50_coco.py'

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
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
