# UperNet, DS-Net-T, Cityscapes, 512x1024 crops, 80k iterations, 8 GPUs x 2 images: the ADE20K recipe
# over 80k iterations (../_base_/schedules/upernet_adamw_80k.py); sliding-window test with 512x1024
# windows at stride 341x682 (mmseg's Cityscapes setting). Recipe and drop-path rates are our choice.
# Backbone weights (init_cfg): checkpoints/dsnet_t_in1k_backbone.pth, written by
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_tiny_pretrained.pdparams checkpoints/dsnet_t_in1k.pth
_base_ = [
    '../_base_/models/upernet_dsnet.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/upernet_adamw_80k.py',
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='tiny', drop_path_rate=0.1),
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 682)))
train_dataloader = dict(batch_size=2)

# Stage-wise lr decay 0.9: mmseg's ConvNeXt UperNet configs (mmseg 1.2.2
# configs/convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py: decay_rate 0.9,
# 'stage_wise'); the layer ids are this package's (timm's ConvNeXt coarse grouping: stem, one per
# stage, then neck and heads at the full lr). lr and weight decay stay Swin's (see the schedule).
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, decay_type='stage_wise'))
