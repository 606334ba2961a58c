# Mask R-CNN with a DS-Net backbone and mmdet's FPN. Leaves pick the arch (and neck) on top.
# ImageNet weights by default: the backbone-only file that
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
# writes next to the classifier (checkpoints/dsnet_s_in1k_backbone.pth; T: tiny/_t_, B: base/_b_).
# A missing file stops training at start-up with that command (PretrainedCheckHook); from scratch:
# --cfg-options model.backbone.init_cfg=None (logged as a warning).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='DSNet',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        # no attention dropout at detection/segmentation scale, as mmdet's Swin and PVT configs; with
        # dropout torch's SDPA cannot use a fused kernel (benchmarks/README.md, 'DS-Net at detection
        # scale'). The ImageNet configs keep the reference's 0.1.
        attn_drop_rate=0.,
        # 2 images per GPU: synchronise the BatchNorm statistics across GPUs (4 BNs per block)
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/dsnet_s_in1k_backbone.pth', prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 320, 512]))
custom_hooks = [dict(type='PretrainedCheckHook')]
