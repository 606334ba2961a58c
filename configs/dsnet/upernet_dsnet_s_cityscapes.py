# UperNet, DS-Net-S, Cityscapes: upernet_dsnet_t_cityscapes.py with the small arch (same stage widths).
# Backbone init_cfg=None (from scratch). ImageNet weights: checkpoints/dsnet_s_in1k_backbone.pth from
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
# then model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=THAT, prefix='backbone.')))
_base_ = './upernet_dsnet_t_cityscapes.py'
model = dict(backbone=dict(arch='small', drop_path_rate=0.2))
