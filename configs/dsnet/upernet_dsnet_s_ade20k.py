# UperNet, DS-Net-S, ADE20K: upernet_dsnet_t_ade20k.py with the small arch (same stage widths).
# Backbone weights (init_cfg): checkpoints/dsnet_s_in1k_backbone.pth, written by
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
_base_ = './upernet_dsnet_t_ade20k.py'
model = dict(backbone=dict(arch='small', drop_path_rate=0.2, init_cfg=dict(checkpoint='checkpoints/dsnet_s_in1k_backbone.pth')))
