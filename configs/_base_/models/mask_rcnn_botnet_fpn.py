# Mask R-CNN with a BoT50 backbone and mmdet's FPN. Leaves pick the input protocol and schedule.
# The conv layers start from ImageNet ResNet-50 weights, converted once with
#   python tools/model_converters/resnet_to_botnet.py resnet50-0676ba61.pth \
#       checkpoints/botnet50_from_resnet50_1024.pth --arch 50 --img-size 1024 1024
# (the torchvision checkpoint behind mmdet's 'torchvision://resnet50'); the report lists the
# attention layers (and the BN after each) that start from BoTNet's own init.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='BoTNet',
        arch='50',
        img_size=(1024, 1024),  # the relative tables' size: the paper's 1024x1024 canvas
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        # BN statistics keep training (the BNs after the new attention layers start fresh), and
        # synchronise them across GPUs (2 images per GPU); the paper trains BN as well
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/botnet50_from_resnet50_1024.pth')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
# a missing init_cfg file stops training at start-up with the command that makes it
custom_hooks = [dict(type='PretrainedCheckHook')]
