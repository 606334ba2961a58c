# DS-Net-S with the dual-stream FPN (DS-FPN) in place of FPN.
_base_ = './mask_rcnn_dsnet_s_coco.py'
model = dict(neck=dict(type='DSFPN', global_strides=(8, 4, 2, 1)))
