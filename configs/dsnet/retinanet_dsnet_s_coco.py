# RetinaNet, DS-Net-S, FPN, COCO 2017, 1x, AdamW.
# Backbone weights (init_cfg): checkpoints/dsnet_s_in1k_backbone.pth, written by
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
_base_ = [
    '../_base_/models/retinanet_dsnet_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    '../_base_/schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(backbone=dict(arch='small'))

# Stage-wise lr decay 0.95 (layer_decay_rate, decay_type): the rate of mmdet's ConvNeXt-T Mask R-CNN
# (mmdet 3.3.0 configs/convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py). Its 'layer_wise'
# groups ConvNeXt's blocks into 6 ids (stem 0.95**7 of the lr); this package's per-block 'layer_wise'
# would give DS-Net-S 19 ids (stem 0.95**19), so 'stage_wise' (stem 0.95**5) is the nearer match, this
# package's choice. lr and weight decay stay Swin's (../_base_/schedules/adamw_1x.py).
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95, decay_type='stage_wise'))
