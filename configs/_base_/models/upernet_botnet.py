# UperNet with a BoT50 backbone (mmseg's ResNet UperNet skeleton: UPerHead on c2..c5, FCN auxiliary
# head on c4), output stride 32 (no dilation: the attention layers run at the c4/c5 maps). Leaves
# pick the dataset, the crop (img_size) and the schedule. ImageNet ResNet-50 weights:
#   python tools/model_converters/resnet_to_botnet.py resnet50-0676ba61.pth \
#       checkpoints/botnet50_from_resnet50_512.pth --arch 50 --img-size 512 512
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    pretrained=None,  # the skeleton's ResNet-V1c weights; BoTNet loads through backbone.init_cfg
    backbone=dict(
        _delete_=True,
        type='BoTNet',
        arch='50',
        img_size=(512, 512),
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/botnet50_from_resnet50_512.pth')),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    auxiliary_head=dict(in_channels=1024))
# a missing init_cfg file stops training at start-up with the command that makes it
custom_hooks = [dict(type='PretrainedCheckHook')]
