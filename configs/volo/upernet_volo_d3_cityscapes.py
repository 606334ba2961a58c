# UperNet, VOLO-D3, Cityscapes: the VOLO-D2 recipe with drop path 0.3 (this package's choice, growing with depth).
# Backbone weights (init_cfg): checkpoints/volo_d3_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d3_224_85.4.pth.tar checkpoints/volo_d3_in1k.pth
_base_ = './upernet_volo_d2_cityscapes.py'  # D2's recipe: layer decay 0.95 (see the D1 config)
model = dict(
    backbone=dict(arch='d3', drop_path_rate=0.3, init_cfg=dict(checkpoint='checkpoints/volo_d3_in1k.pth')),
    decode_head=dict(in_channels=[256, 512, 512, 512]),
    auxiliary_head=dict(in_channels=512))
