# Mask R-CNN, DMFormer-S, FPN, COCO 2017, 1x (12 epochs), AdamW lr 1e-4, 8 GPUs x 2 images.
_base_ = [
    '../_base_/models/mask_rcnn_dmformer_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../_base_/schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(backbone=dict(arch='s'))
# no weight decay on the layer scales either (1-D parameters)
optim_wrapper = dict(paramwise_cfg=dict(flat_decay_mult=0.))
