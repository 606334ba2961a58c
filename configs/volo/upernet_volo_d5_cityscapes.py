# UperNet, VOLO-D5, Cityscapes: the VOLO-D2 recipe with drop path 0.5 (this package's choice, growing with depth).
# Backbone weights (init_cfg): checkpoints/volo_d5_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d5_224_86.10.pth.tar checkpoints/volo_d5_in1k.pth
_base_ = './upernet_volo_d2_cityscapes.py'  # D2's recipe: layer decay 0.95 (see the D1 config)
model = dict(
    backbone=dict(arch='d5', drop_path_rate=0.5, init_cfg=dict(checkpoint='checkpoints/volo_d5_in1k.pth')),
    decode_head=dict(in_channels=[384, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))
