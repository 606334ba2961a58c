# As the 1x config at the paper's 1024x1024 protocol, 36 epochs (steps at 27 and 33).
_base_ = './mask_rcnn_botnet50_1024_coco.py'

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1)
]
