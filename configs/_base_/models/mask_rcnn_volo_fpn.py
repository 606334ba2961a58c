# Mask R-CNN with a VOLO backbone and mmdet's FPN. VOLO's native strides 8/16/16/16 are resampled
# to 4/8/16/32 (`out_strides`: transposed conv, transposed conv, identity, max-pool), and the
# 14x14 (224) position embedding is interpolated to every image. Leaves pick the arch on top.
# ImageNet weights by default: the official 224 classifier converted with
#   python tools/model_converters/volo_to_mmvit.py d1_224_84.2.pth.tar checkpoints/volo_d1_in1k.pth
# (the classification part is dropped when loading). A missing file stops training at start-up
# with that command (PretrainedCheckHook); from scratch: --cfg-options model.backbone.init_cfg=None.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
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
        # 2 images per GPU: synchronise the stem's BatchNorm statistics across GPUs
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/volo_d1_in1k.pth', prefix='backbone.')),
    neck=dict(in_channels=[192, 384, 384, 384]))
custom_hooks = [dict(type='PretrainedCheckHook')]
