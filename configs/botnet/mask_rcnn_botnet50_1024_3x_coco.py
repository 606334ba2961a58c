# As the 1x config at the paper's 1024x1024 protocol, 36 epochs (steps at 27 and 33).
# Weights: init_cfg expects checkpoints/botnet50_from_resnet50_1024.pth
# (set in ../_base_/models/mask_rcnn_botnet_fpn.py),
# converted from a torchvision, timm or mmpretrain ResNet-50 (R50.pth) with
#   python tools/model_converters/resnet_to_botnet.py R50.pth \
#     checkpoints/botnet50_from_resnet50_1024.pth --arch 50 --img-size 1024 1024
_base_ = './mask_rcnn_botnet50_1024_coco.py'

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1)
]
