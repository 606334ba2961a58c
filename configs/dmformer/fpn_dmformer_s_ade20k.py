# Semantic FPN, DMFormer-S, ADE20K, 512x512 crops, 40k iterations, 8 GPUs x 2 images (total 16, as
# the paper); PVT's/PoolFormer's recipe: AdamW lr 2e-4, weight decay 1e-4, poly decay (power 0.9).
_base_ = [
    '../_base_/models/fpn_dmformer.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor, decode_head=dict(num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0., begin=0, end=40000, by_epoch=False)]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)  # 8 GPUs x 2 images (--auto-scale-lr)
