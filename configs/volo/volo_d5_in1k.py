# VOLO-D5, ImageNet-1K, 224x224: the D3 recipe (no D5 training settings found in the sources;
# lr 1e-3 and drop path 0.5 carried over from D3, not verified).
_base_ = './volo_d3_in1k.py'
model = dict(backbone=dict(arch='d5'), head=dict(in_channels=768))
