# Mask R-CNN, VOLO-D2, FPN, COCO 1x: the D1 recipe with drop path 0.2.
# Backbone weights (init_cfg): checkpoints/volo_d2_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d2_224_85.2.pth.tar checkpoints/volo_d2_in1k.pth
_base_ = './mask_rcnn_volo_d1_coco.py'
model = dict(backbone=dict(arch='d2', drop_path_rate=0.2, init_cfg=dict(checkpoint='checkpoints/volo_d2_in1k.pth')), neck=dict(in_channels=[256, 512, 512, 512]))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))  # D2-D5: see the D1 config
