# DMA ablation: per-level weights that are learned constants (no input-adaptive gate).
_base_ = './dmformer_s_in1k.py'
model = dict(backbone=dict(mixer_cfg=dict(type='DMAAblation', gate='static')))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'gate_logits': dict(decay_mult=0.)}))
