# BoT50 Mask R-CNN, 3x schedule with multi-scale training (shorter side 480-800), as mmdet's mstrain-3x.
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
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, 480), (1333, 512), (1333, 544), (1333, 576), (1333, 608), (1333, 640),
                 (1333, 672), (1333, 704), (1333, 736), (1333, 768), (1333, 800)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
