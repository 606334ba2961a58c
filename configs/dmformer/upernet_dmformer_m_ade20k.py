_base_ = './upernet_dmformer_s_ade20k.py'
model = dict(
    backbone=dict(arch='m', drop_path_rate=0.3, init_cfg=dict(checkpoint='checkpoints/dmformer_m_in1k_backbone.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
