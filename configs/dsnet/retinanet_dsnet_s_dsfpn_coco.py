# RetinaNet, DS-Net-S, DS-FPN (levels C3-C5 enhanced; global streams on the 1/32 grid).
_base_ = './retinanet_dsnet_s_coco.py'
model = dict(neck=dict(type='DSFPN', global_strides=(4, 2, 1)))
