# UperNet, VOLO-D2, Cityscapes: the VOLO-D1 recipe with drop path 0.2 (this package's choice, growing with depth).
_base_ = './upernet_volo_d1_cityscapes.py'
model = dict(
    backbone=dict(arch='d2', drop_path_rate=0.2),
    decode_head=dict(in_channels=[256, 512, 512, 512]),
    auxiliary_head=dict(in_channels=512))
