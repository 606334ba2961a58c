# DS-Net-S, ImageNet-1K: dsnet_t_in1k.py's recipe with the small arch (drop path 0.1, as the
# reference code's default).
_base_ = './dsnet_t_in1k.py'
model = dict(backbone=dict(arch='small'))
