# mmpretrain ImageClassifier with DS-Net: the backbone returns the stage-4 map (after its final
# BatchNorm, as the reference classifier), mmpretrain's GlobalAveragePooling and LinearClsHead
# (512 -> num_classes) make the prediction. Leaves pick the arch, the loss, the augments, the data
# and the schedule.
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DSNet',
        arch='tiny',
        out_indices=(3, ),
        drop_path_rate=0.1,
        # ImageNet weights: python tools/model_converters/dsnet_to_mmvit.py DSNet_tiny_pretrained.pdparams
        # checkpoints/dsnet_t_in1k.pth writes a checkpoint of this whole classifier (load_from /
        # tools/test.py) or, for the backbone alone, dict(type='Pretrained',
        # checkpoint='checkpoints/dsnet_t_in1k.pth', prefix='backbone.')
        init_cfg=None),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,  # stage-4 width of every DS-Net arch
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))
