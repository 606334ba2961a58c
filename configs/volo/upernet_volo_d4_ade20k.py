# UperNet, VOLO-D4, ADE20K: the VOLO-D1 recipe with drop path 0.4 (this package's choice, growing with depth).
_base_ = './upernet_volo_d1_ade20k.py'
model = dict(
    backbone=dict(arch='d4', drop_path_rate=0.4),
    decode_head=dict(in_channels=[384, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))
