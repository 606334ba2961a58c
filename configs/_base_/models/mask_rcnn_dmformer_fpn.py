# Mask R-CNN with a DMFormer backbone and mmdet's FPN. Leaves pick the arch on top.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='DMFormer',
        arch='s',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        # 2 images per GPU: synchronise the BatchNorm statistics across GPUs
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        # ImageNet weights: no DMFormer weights are published; train configs/dmformer/dmformer_<s|m|l>_in1k.py
        # first, then dict(type='Pretrained', checkpoint='work_dirs/dmformer_s_in1k/epoch_300.pth', prefix='backbone.')
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 320, 512]))
