# UperNet, VOLO-D4, Cityscapes: the VOLO-D2 recipe with drop path 0.4 (this package's choice, growing with depth).
# Backbone weights (init_cfg): checkpoints/volo_d4_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d4_224_85.7.pth.tar checkpoints/volo_d4_in1k.pth
_base_ = './upernet_volo_d2_cityscapes.py'  # D2's recipe: layer decay 0.95 (see the D1 config)
model = dict(
    backbone=dict(arch='d4', drop_path_rate=0.4, init_cfg=dict(checkpoint='checkpoints/volo_d4_in1k.pth')),
    decode_head=dict(in_channels=[384, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))
