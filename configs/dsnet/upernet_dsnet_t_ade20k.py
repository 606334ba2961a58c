# UperNet, DS-Net-T, ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images, with the Swin/ConvNeXt
# UperNet recipe (AdamW lr 6e-5, weight decay 0.01, 1500 warm-up iterations, linear "poly" decay):
# see ../_base_/schedules/upernet_adamw_160k.py. The DS-Net paper gives no segmentation recipe;
# this one and the drop-path rates (T 0.1, S 0.2, B 0.3) are our choice, not the paper's.
# Backbone weights (init_cfg): checkpoints/dsnet_t_in1k_backbone.pth, written by
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_tiny_pretrained.pdparams checkpoints/dsnet_t_in1k.pth
_base_ = [
    '../_base_/models/upernet_dsnet.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/upernet_adamw_160k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='tiny', drop_path_rate=0.1),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
train_dataloader = dict(batch_size=2)

# Stage-wise lr decay 0.9: mmseg's ConvNeXt UperNet configs (mmseg 1.2.2
# configs/convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py: decay_rate 0.9,
# 'stage_wise'); the layer ids are this package's (timm's ConvNeXt coarse grouping: stem, one per
# stage, then neck and heads at the full lr). lr and weight decay stay Swin's (see the schedule).
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, decay_type='stage_wise'))
