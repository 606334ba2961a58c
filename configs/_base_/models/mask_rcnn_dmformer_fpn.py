# Mask R-CNN with a DMFormer backbone and mmdet's FPN. Leaves pick the arch on top.
# ImageNet weights by default. No DMFormer weights are published: train this package's own
# configs/dmformer/dmformer_s_in1k.py (m, l likewise), then extract its backbone with
#   python tools/model_converters/extract_backbone.py work_dirs/dmformer_s_in1k/epoch_300.pth checkpoints/dmformer_s_in1k_backbone.pth
# A missing file stops training at start-up with these commands (PretrainedCheckHook); from
# scratch: --cfg-options model.backbone.init_cfg=None (logged as a warning).
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
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/dmformer_s_in1k_backbone.pth', prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 320, 512]))
custom_hooks = [dict(type='PretrainedCheckHook')]
