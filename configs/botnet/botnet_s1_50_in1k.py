# BoTNet-S1-50 (c5 at stride 1: the attention runs at 14x14), ImageNet-1K, recipe of botnet50_in1k.
_base_ = './botnet50_in1k.py'
model = dict(backbone=dict(arch='s1-50'))
