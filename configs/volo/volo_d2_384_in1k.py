# VOLO-D2 at 384x384: the D1 high-resolution fine-tune with 48 images per GPU (official).
_base_ = './volo_d1_384_in1k.py'
model = dict(backbone=dict(arch='d2', drop_path_rate=0.2), head=dict(in_channels=512))
train_dataloader = dict(batch_size=48)
auto_scale_lr = dict(base_batch_size=384)
