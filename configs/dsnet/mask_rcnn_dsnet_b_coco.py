# Backbone weights (init_cfg): checkpoints/dsnet_b_in1k_backbone.pth, written by
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_base_pretrained.pdparams checkpoints/dsnet_b_in1k.pth
_base_ = './mask_rcnn_dsnet_s_coco.py'
model = dict(backbone=dict(arch='base', drop_path_rate=0.2, init_cfg=dict(checkpoint='checkpoints/dsnet_b_in1k_backbone.pth')))
