# 12-epoch schedule with AdamW, the recipe transformer-backbone detectors use (Swin, PVT):
# lr 1e-4 at total batch 16, weight decay 0.05 except norms and biases, steps at epochs 8 and 11.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=None)
auto_scale_lr = dict(enable=False, base_batch_size=16)
