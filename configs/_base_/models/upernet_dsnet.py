# UperNet with a DS-Net backbone (mmseg's Swin UperNet skeleton: UPerHead on all four stages, FCN
# auxiliary head on stage 3). DS-Net T/S/B share the stage widths 64/128/320/512, so the heads'
# in_channels hold for every arch; leaves pick the arch, dataset and schedule on top.
_base_ = 'mmseg::_base_/models/upernet_swin.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='DSNet',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        # ImageNet weights (python tools/model_converters/dsnet_to_mmvit.py DSNet_<arch>_pretrained.pdparams
        # checkpoints/dsnet_<t|s|b>_in1k.pth writes checkpoints/dsnet_<t|s|b>_in1k_backbone.pth):
        # dict(type='Pretrained', checkpoint='checkpoints/dsnet_s_in1k_backbone.pth', prefix='backbone.')
        init_cfg=None),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
