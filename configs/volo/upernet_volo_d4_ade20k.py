# UperNet, VOLO-D4, ADE20K: the VOLO-D1 recipe with drop path 0.4 (this package's choice, growing with depth).
# Backbone init_cfg=None (from scratch). ImageNet weights: checkpoints/volo_d4_in1k.pth from
#   python tools/model_converters/volo_to_mmvit.py d4_224_85.7.pth.tar checkpoints/volo_d4_in1k.pth
# then model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=THAT, prefix='backbone.')))
_base_ = './upernet_volo_d1_ade20k.py'
model = dict(
    backbone=dict(arch='d4', drop_path_rate=0.4),
    decode_head=dict(in_channels=[384, 768, 768, 768]),
    auxiliary_head=dict(in_channels=768))
