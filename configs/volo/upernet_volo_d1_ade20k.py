# UperNet, VOLO-D1, ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images. The paper reports
# UperNet (54.3 mIoU for its best model) but released no segmentation recipe; this is Swin's
# UperNet recipe: AdamW lr 6e-5, weight decay 0.01 (not on norms, biases, the position
# embedding), 1500 linear warmup iterations, then linear decay.
# Backbone weights (init_cfg): checkpoints/volo_d1_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d1_224_84.2.pth.tar checkpoints/volo_d1_in1k.pth
_base_ = [
    '../_base_/models/upernet_volo.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/upernet_adamw_160k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))

# no weight decay on the position embedding either
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.)}))
train_dataloader = dict(batch_size=2)
