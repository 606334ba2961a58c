# UperNet, VOLO-D1, Cityscapes, 512x1024 crops, 80k iterations, 8 GPUs x 2 images; the ADE20K
# recipe over 80k iterations, and sliding-window testing with 512x1024 windows as the paper did
# (84.3 mIoU for its best model, sail-sg/volo#4). The position embedding is interpolated to each
# window's 32x64 grid.
# Backbone weights (init_cfg): checkpoints/volo_d1_in1k.pth, written by
#   python tools/model_converters/volo_to_mmvit.py d1_224_84.2.pth.tar checkpoints/volo_d1_in1k.pth
_base_ = [
    '../_base_/models/upernet_volo.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/upernet_adamw_80k.py',
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 682)))

# no weight decay on the position embedding either
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.)}))
train_dataloader = dict(batch_size=2)
