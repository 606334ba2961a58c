# VOLO-D3, ImageNet-1K, 224x224: the D2 recipe with drop path 0.5 (official).
_base_ = './volo_d2_in1k.py'
model = dict(backbone=dict(arch='d3', drop_path_rate=0.5))
