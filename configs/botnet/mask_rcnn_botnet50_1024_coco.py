# Mask R-CNN, BoT50, FPN, COCO 2017, 12 epochs, the paper's protocol: 1024x1024 canvas, scale jitter
# [0.8, 1.25], every image (train and test) padded to 1024x1024 so the attention always runs at
# the tables' size (64x64 and 32x32 maps). SGD lr 0.02 at total batch 16 (8 GPUs x 2 images).
# Weights: init_cfg expects checkpoints/botnet50_from_resnet50_1024.pth
# (set in ../_base_/models/mask_rcnn_botnet_fpn.py),
# converted from a torchvision, timm or mmpretrain ResNet-50 (R50.pth) with
#   python tools/model_converters/resnet_to_botnet.py R50.pth \
#     checkpoints/botnet50_from_resnet50_1024.pth --arch 50 --img-size 1024 1024
_base_ = [
    '../_base_/models/mask_rcnn_botnet_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
image_size = (1024, 1024)
model = dict(
    # training batches are padded to the canvas; the backbone's tables are sized for it
    data_preprocessor=dict(batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(img_size=image_size))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    # the fixed canvas, (w, h); padded with the mean pixel (BGR), as BatchFixedSizePad pads the
    # normalised training batches with zeros
    dict(type='Pad', size=image_size, pad_val=dict(img=(104, 116, 124))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# no weight decay on the relative-position tables, as in botnet50_in1k.py: position embeddings,
# which mmdet's and mmseg's Swin configs keep out of weight decay ('relative_position_bias_table')
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'rel_pos_': dict(decay_mult=0.)}))
