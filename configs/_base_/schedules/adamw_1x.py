# 12-epoch AdamW schedule of mmdet's Swin-T Mask R-CNN 1x (mmdet 3.3.0
# configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py): AdamW lr 1e-4 at total batch 16 (8 GPUs x 2
# images), betas (0.9, 0.999), weight decay 0.05 except the norm layers (Swin: its 'norm' parameters;
# leaves add their position embeddings, as Swin's absolute_pos_embed / relative_position_bias_table),
# 1000 linear warm-up iterations from 0.001 x lr, lr x0.1 after epochs 8 and 11. (mmdet's PVT
# RetinaNet configs use AdamW lr 1e-4 with weight decay 1e-4 instead.)
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.),
    clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
