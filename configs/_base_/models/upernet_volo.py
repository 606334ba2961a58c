# UperNet with a VOLO backbone (mmseg's Swin UperNet skeleton: UPerHead on four levels, FCN
# auxiliary head on the stride-16 level). VOLO's native strides are 8/16/16/16; `out_strides`
# resamples them to 4/8/16/32 (a 2x2 stride-2 transposed conv for 8->4 and 16->8, identity,
# 2x2 max-pool for 16->32). The 14x14 (224) position embedding is interpolated to every crop.
# Leaves pick the arch, dataset and schedule on top.
# ImageNet weights by default: the official 224 classifier converted with
#   python tools/model_converters/volo_to_mmvit.py d1_224_84.2.pth.tar checkpoints/volo_d1_in1k.pth
# (the classification part is dropped when loading). A missing file stops training at start-up
# with that command (PretrainedCheckHook); from scratch: --cfg-options model.backbone.init_cfg=None.
_base_ = 'mmseg::_base_/models/upernet_swin.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='VOLO',
        arch='d1',
        img_size=224,
        out_indices=(0, 1, 2, 3),
        out_strides=(4, 8, 16, 32),
        drop_path_rate=0.1,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/volo_d1_in1k.pth', prefix='backbone.')),
    decode_head=dict(in_channels=[192, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
custom_hooks = [dict(type='PretrainedCheckHook')]
