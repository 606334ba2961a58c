_base_ = './mask_rcnn_dsnet_s_coco.py'
model = dict(backbone=dict(arch='base', drop_path_rate=0.2))
