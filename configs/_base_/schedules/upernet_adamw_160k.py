# Swin's UperNet recipe for transformer backbones (mmseg 1.2.2
# configs/swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py): AdamW lr 6e-5,
# betas (0.9, 0.999), weight decay 0.01, 1500 linear warm-up iterations from 1e-6 x lr, then linear
# ("poly", power 1) decay to 0 over 160k iterations, for 8 GPUs x 2 images (leaves set
# `train_dataloader.batch_size=2`). Swin takes its norms out of weight decay; here norms, biases and
# every other 1-D parameter (DMFormer's layer scales) are: this package's choice, as the DS-Net and
# DMFormer ImageNet recipes (DeiT's). Leaves with a shorter schedule (Cityscapes 80k) override
# `train_cfg.max_iters` and the second scheduler's `end`.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0., power=1.0, begin=1500, end=160000, by_epoch=False),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)  # 8 GPUs x 2 images (--auto-scale-lr)
