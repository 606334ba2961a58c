# UperNet, VOLO-D3, ADE20K: the VOLO-D1 recipe with drop path 0.3 (this package's choice, growing with depth).
_base_ = './upernet_volo_d1_ade20k.py'
model = dict(
    backbone=dict(arch='d3', drop_path_rate=0.3),
    decode_head=dict(in_channels=[256, 512, 512, 512]),
    auxiliary_head=dict(in_channels=512))
