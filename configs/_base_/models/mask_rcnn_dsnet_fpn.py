# Mask R-CNN with a DS-Net backbone and mmdet's FPN. Leaves pick the arch (and neck) on top.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='DSNet',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        # ImageNet weights (python tools/model_converters/dsnet_to_mmvit.py DSNet_<arch>_pretrained.pdparams
        # checkpoints/dsnet_<t|s|b>_in1k.pth writes checkpoints/dsnet_<t|s|b>_in1k_backbone.pth):
        # dict(type='Pretrained', checkpoint='checkpoints/dsnet_s_in1k_backbone.pth', prefix='backbone.')
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 320, 512]))
