# UperNet with a VOLO backbone (mmseg's Swin UperNet skeleton: UPerHead on four levels, FCN
# auxiliary head on the stride-16 level). VOLO's native strides are 8/16/16/16; `out_strides`
# resamples them to 4/8/16/32 (a 2x2 stride-2 transposed conv for 8->4 and 16->8, identity,
# 2x2 max-pool for 16->32). The 14x14 (224) position embedding is interpolated to every crop.
# Leaves pick the arch, dataset and schedule on top.
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
        # ImageNet weights (tools/model_converters/volo_to_mmvit.py):
        # dict(type='Pretrained', checkpoint='PATH', prefix='backbone.')
        init_cfg=None),
    decode_head=dict(in_channels=[192, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
