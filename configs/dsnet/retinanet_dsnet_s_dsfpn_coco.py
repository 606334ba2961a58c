# RetinaNet, DS-Net-S, DS-FPN: dual-stream blocks on the C4 and C5 laterals (before the top-down
# path), global streams on the 1/32 grid. Cost and options: configs/dsnet/README_dsfpn.md.
_base_ = './retinanet_dsnet_s_coco.py'
model = dict(neck=dict(type='DSFPN', ds_levels=(-2, -1), position='lateral'))
