# DS-Net-B, ImageNet-1K: dsnet_t_in1k.py's recipe with the base arch (drop path 0.1, the
# reference code's default; not tuned here).
_base_ = './dsnet_t_in1k.py'
model = dict(backbone=dict(arch='base'))
