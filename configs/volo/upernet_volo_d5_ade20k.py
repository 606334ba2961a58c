# UperNet, VOLO-D5, ADE20K: the VOLO-D1 recipe with drop path 0.5 (this package's choice, growing with depth).
_base_ = './upernet_volo_d1_ade20k.py'
model = dict(
    backbone=dict(arch='d5', drop_path_rate=0.5),
    decode_head=dict(in_channels=[384, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))
