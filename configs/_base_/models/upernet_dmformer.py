# UperNet with a DMFormer backbone (mmseg's Swin UperNet skeleton: UPerHead on all four stages, FCN
# auxiliary head on stage 3). Leaves pick the arch, dataset and schedule on top.
_base_ = 'mmseg::_base_/models/upernet_swin.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='DMFormer',
        arch='s',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        # ImageNet weights: no DMFormer weights are published; train configs/dmformer/dmformer_<s|m|l>_in1k.py
        # first, then dict(type='Pretrained', checkpoint='work_dirs/dmformer_s_in1k/epoch_300.pth', prefix='backbone.')
        init_cfg=None),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
