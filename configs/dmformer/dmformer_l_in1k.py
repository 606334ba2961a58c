_base_ = './dmformer_s_in1k.py'
model = dict(backbone=dict(arch='l', drop_path_rate=0.3), head=dict(in_channels=1024))
