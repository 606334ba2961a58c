# DMA ablation: input-adaptive weights per level and channel applied before the 1x1 conv (SKNet-style),
# in place of the SE vector after it.
_base_ = './dmformer_s_in1k.py'
model = dict(backbone=dict(mixer_cfg=dict(type='DMAAblation', gate='level')))
