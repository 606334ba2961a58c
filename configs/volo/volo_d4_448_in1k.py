# VOLO-D4 at 448x448: the D3 448 fine-tune. Test as timm's crop_pct 1.15: resize the shorter
# edge to 448 / 1.15 = 389, center crop 448 with zero padding.
_base_ = './volo_d3_448_in1k.py'
init_checkpoint = 'checkpoints/volo_d4_in1k.pth'  # volo_to_mmvit.py d4_224_85.7.pth.tar checkpoints/volo_d4_in1k.pth
model = dict(
    backbone=dict(arch='d4', init_cfg=dict(checkpoint=init_checkpoint)),
    head=dict(in_channels=768, init_cfg=dict(checkpoint=init_checkpoint)))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=389, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=448, auto_pad=True),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
