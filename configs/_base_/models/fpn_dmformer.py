# Semantic FPN with a DMFormer backbone (mmseg's FPN skeleton: FPN neck, 4 levels of 256 channels,
# FPNHead). Leaves pick the arch, dataset and schedule on top.
_base_ = 'mmseg::_base_/models/fpn_r50.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    pretrained=None,  # the skeleton's ResNet weights; DMFormer loads through backbone.init_cfg
    backbone=dict(
        _delete_=True,
        type='DMFormer',
        arch='s',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        # ImageNet weights: no DMFormer weights are published; train configs/dmformer/dmformer_<s|m|l>_in1k.py
        # first, then dict(type='Pretrained', checkpoint='work_dirs/dmformer_s_in1k/epoch_300.pth', prefix='backbone.')
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 320, 512]))
