# DMA ablation: one level (the widest, 7x7 with dilation 3) instead of three.
_base_ = './dmformer_s_in1k.py'
model = dict(backbone=dict(mixer_cfg=dict(type='DMA', kernel_sizes=(7, ), dilations=(3, ))))
