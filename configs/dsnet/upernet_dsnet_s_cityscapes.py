# UperNet, DS-Net-S, Cityscapes: upernet_dsnet_t_cityscapes.py with the small arch (same stage widths).
_base_ = './upernet_dsnet_t_cityscapes.py'
model = dict(backbone=dict(arch='small', drop_path_rate=0.2))
