# DS-Net-S with the dual-stream FPN (DS-FPN) in place of FPN: dual-stream blocks on the P4 and P5
# laterals (before the top-down path), global streams on the 1/32 grid. Cost and options:
# configs/dsnet/README_dsfpn.md.
# Backbone weights (init_cfg): checkpoints/dsnet_s_in1k_backbone.pth, written by
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
_base_ = './mask_rcnn_dsnet_s_coco.py'
model = dict(
    neck=dict(
        type='DSFPN',
        ds_levels=(-2, -1),
        # no attention dropout at detection/segmentation scale, as mmdet's Swin and PVT configs; with
        # dropout torch's SDPA cannot use a fused kernel (benchmarks/README.md, 'DS-Net at detection
        # scale'). DSFPN's default, written out.
        attn_drop_rate=0.,
        # the blocks' BatchNorms see 2 images per GPU: synchronise them, as the backbone's
        block_norm_cfg=dict(type='SyncBN', requires_grad=True)))
