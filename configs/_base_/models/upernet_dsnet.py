# UperNet with a DS-Net backbone (mmseg's Swin UperNet skeleton: UPerHead on all four stages, FCN
# auxiliary head on stage 3). DS-Net T/S/B share the stage widths 64/128/320/512, so the heads'
# in_channels hold for every arch; leaves pick the arch, dataset and schedule on top.
# ImageNet weights by default: the backbone-only file that
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_tiny_pretrained.pdparams checkpoints/dsnet_t_in1k.pth
# writes next to the classifier (checkpoints/dsnet_t_in1k_backbone.pth). A missing file stops
# training at start-up with that command (PretrainedCheckHook); from scratch:
# --cfg-options model.backbone.init_cfg=None (logged as a warning).
_base_ = 'mmseg::_base_/models/upernet_swin.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='DSNet',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        # no attention dropout at detection/segmentation scale, as mmdet's Swin and PVT configs; with
        # dropout torch's SDPA cannot use a fused kernel (benchmarks/README.md, 'DS-Net at detection
        # scale'). The ImageNet configs keep the reference's 0.1.
        attn_drop_rate=0.,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/dsnet_t_in1k_backbone.pth', prefix='backbone.')),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
custom_hooks = [dict(type='PretrainedCheckHook')]
