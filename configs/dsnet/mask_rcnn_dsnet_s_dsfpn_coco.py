# DS-Net-S with the dual-stream FPN (DS-FPN) in place of FPN: dual-stream blocks on the P4 and P5
# laterals (before the top-down path), global streams on the 1/32 grid. Cost and options:
# configs/dsnet/README_dsfpn.md.
_base_ = './mask_rcnn_dsnet_s_coco.py'
model = dict(neck=dict(type='DSFPN', ds_levels=(-2, -1), position='lateral'))
