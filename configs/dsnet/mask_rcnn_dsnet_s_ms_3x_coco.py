# DS-Net-S Mask R-CNN, 3x schedule with multi-scale training (shorter side 480-800), as mmdet's mstrain-3x.
# Backbone init_cfg=None (from scratch). ImageNet weights: checkpoints/dsnet_s_in1k_backbone.pth from
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
# then model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=THAT, prefix='backbone.')))
_base_ = './mask_rcnn_dsnet_s_coco.py'

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
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
