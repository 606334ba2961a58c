# Mask R-CNN, BoT50, FPN, COCO 2017, 12 epochs, mmdet's standard protocol: 1333x800 resize, batches
# padded to a multiple of 32, so every batch has its own size; the relative tables (sized for
# 800x1344, the largest landscape batch) are resampled to each feature map. SGD lr 0.02, batch 16.
# Weights (R50.pth: a torchvision, timm or mmpretrain ResNet-50):
#   python tools/model_converters/resnet_to_botnet.py R50.pth \
#     checkpoints/botnet50_from_resnet50_800x1344.pth --arch 50 --img-size 800 1344
_base_ = [
    '../_base_/models/mask_rcnn_botnet_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(backbone=dict(
    img_size=(800, 1344),
    init_cfg=dict(checkpoint='checkpoints/botnet50_from_resnet50_800x1344.pth')))
# no weight decay on the relative-position tables, as in botnet50_in1k.py: position embeddings,
# which mmdet's and mmseg's Swin configs keep out of weight decay ('relative_position_bias_table')
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'rel_pos_': dict(decay_mult=0.)}))
