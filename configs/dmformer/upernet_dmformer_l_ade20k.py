_base_ = './upernet_dmformer_s_ade20k.py'
model = dict(
    backbone=dict(arch='l', drop_path_rate=0.4, init_cfg=dict(checkpoint='checkpoints/dmformer_l_in1k_backbone.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
