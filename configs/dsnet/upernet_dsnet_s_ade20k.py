# UperNet, DS-Net-S, ADE20K: upernet_dsnet_t_ade20k.py with the small arch (same stage widths).
_base_ = './upernet_dsnet_t_ade20k.py'
model = dict(backbone=dict(arch='small', drop_path_rate=0.2))
