# VOLO-D2 at 384x384: the D1 high-resolution fine-tune with 48 images per GPU (official).
_base_ = './volo_d1_384_in1k.py'
init_checkpoint = 'checkpoints/volo_d2_in1k.pth'  # volo_to_mmvit.py d2_224_85.2.pth.tar checkpoints/volo_d2_in1k.pth
model = dict(
    backbone=dict(arch='d2', drop_path_rate=0.2, init_cfg=dict(checkpoint=init_checkpoint)),
    head=dict(in_channels=512, init_cfg=dict(checkpoint=init_checkpoint)))
train_dataloader = dict(batch_size=48)
auto_scale_lr = dict(base_batch_size=384)
