# mmpretrain ImageClassifier with VOLO: the backbone runs the class-attention blocks and returns
# (class token, patch tokens); VOLOHead predicts class logits + 0.5 x max token logits and trains
# with the class loss + 0.5 x the loss of every token (token labeling). Leaves pick the arch
# (backbone.arch, head.in_channels), the image size, the schedule and the data preprocessor
# (MixToken, see configs/volo/volo_d1_in1k.py).
custom_imports = dict(imports=['mmvit_hybrid'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VOLO',
        arch='d1',
        img_size=224,
        out_type='cls_and_tokens',
        drop_path_rate=0.1,
        # weights converted with tools/model_converters/volo_to_mmvit.py load with
        # init_cfg=dict(type='Pretrained', checkpoint='PATH', prefix='backbone.')
        # or `load_from` for the whole classifier
        init_cfg=None),
    neck=None,
    head=dict(
        type='VOLOHead',
        num_classes=1000,
        in_channels=384,
        aux_weight=0.5,
        token_loss_weight=0.5,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False))
