# VOLO-D2, ImageNet-1K, 224x224: the D1 recipe with lr 1e-3 and drop path 0.2 (official).
_base_ = './volo_d1_in1k.py'
model = dict(backbone=dict(arch='d2', drop_path_rate=0.2), head=dict(in_channels=512))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 1e-3, by_epoch=True, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20, end=300),
]
