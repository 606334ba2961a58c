_base_ = './mask_rcnn_dsnet_s_coco.py'
model = dict(backbone=dict(arch='tiny'))
