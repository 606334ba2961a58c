# VOLO-D5 at 448x448: the D4 448 fine-tune and test pipeline (crop_pct 1.15).
_base_ = './volo_d4_448_in1k.py'
init_checkpoint = 'checkpoints/volo_d5_in1k.pth'  # volo_to_mmvit.py d5_224_86.10.pth.tar checkpoints/volo_d5_in1k.pth
model = dict(
    backbone=dict(arch='d5', init_cfg=dict(checkpoint=init_checkpoint)),
    head=dict(init_cfg=dict(checkpoint=init_checkpoint)))
