# UperNet, DS-Net-B, Cityscapes: upernet_dsnet_t_cityscapes.py with the base arch (same stage widths).
_base_ = './upernet_dsnet_t_cityscapes.py'
model = dict(backbone=dict(arch='base', drop_path_rate=0.3))
