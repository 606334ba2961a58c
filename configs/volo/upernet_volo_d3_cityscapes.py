# UperNet, VOLO-D3, Cityscapes: the VOLO-D1 recipe with drop path 0.3 (this package's choice, growing with depth).
# Backbone init_cfg=None (from scratch). ImageNet weights: checkpoints/volo_d3_in1k.pth from
#   python tools/model_converters/volo_to_mmvit.py d3_224_85.4.pth.tar checkpoints/volo_d3_in1k.pth
# then model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=THAT, prefix='backbone.')))
_base_ = './upernet_volo_d1_cityscapes.py'
model = dict(
    backbone=dict(arch='d3', drop_path_rate=0.3),
    decode_head=dict(in_channels=[256, 512, 512, 512]),
    auxiliary_head=dict(in_channels=512))
