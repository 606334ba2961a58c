# VOLO-D5 at 448x448: the D4 448 fine-tune and test pipeline (crop_pct 1.15).
_base_ = './volo_d4_448_in1k.py'
model = dict(backbone=dict(arch='d5'))
