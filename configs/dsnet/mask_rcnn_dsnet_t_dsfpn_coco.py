_base_ = './mask_rcnn_dsnet_s_dsfpn_coco.py'
model = dict(backbone=dict(arch='tiny'))
