# Mask R-CNN, VOLO-D2, FPN, COCO 1x: the D1 recipe with drop path 0.2.
_base_ = './mask_rcnn_volo_d1_coco.py'
model = dict(backbone=dict(arch='d2', drop_path_rate=0.2), neck=dict(in_channels=[256, 512, 512, 512]))
