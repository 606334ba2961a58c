# RetinaNet, DS-Net-S, DS-FPN: dual-stream blocks on the C4 and C5 laterals (before the top-down
# path), global streams on the 1/32 grid. Cost and options: configs/dsnet/README_dsfpn.md.
# Backbone weights (init_cfg): checkpoints/dsnet_s_in1k_backbone.pth, written by
#   python tools/model_converters/dsnet_to_mmvit.py DSNet_small_pretrained.pdparams checkpoints/dsnet_s_in1k.pth
_base_ = './retinanet_dsnet_s_coco.py'
# DS-FPN settings of mask_rcnn_dsnet_s_dsfpn_coco.py (no attention dropout, SyncBN in the blocks)
model = dict(neck=dict(type='DSFPN', ds_levels=(-2, -1), attn_drop_rate=0.,
                       block_norm_cfg=dict(type='SyncBN', requires_grad=True)))
