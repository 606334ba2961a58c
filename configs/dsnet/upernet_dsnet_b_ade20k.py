# UperNet, DS-Net-B, ADE20K: upernet_dsnet_t_ade20k.py with the base arch (same stage widths).
_base_ = './upernet_dsnet_t_ade20k.py'
model = dict(backbone=dict(arch='base', drop_path_rate=0.3))
