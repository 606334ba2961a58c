# DMA ablation: this package's earlier gate, input-adaptive weights per level and channel applied
# before the 1x1 conv, in place of the SE vector after it (add expand_ratio=1 for the earlier DMA).
_base_ = './dmformer_s_in1k.py'
model = dict(backbone=dict(gate='level'))
