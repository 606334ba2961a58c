# UperNet, BoT50, Cityscapes, 512x1024 crops, 80k iterations, 8 GPUs x 2 images; mmseg's ResNet
# UperNet recipe (SGD lr 0.01, poly). Sliding-window testing with the training crop, so the
# attention runs at the tables' size (32x64 and 16x32 maps) on the 1024x2048 images.
# Weights (R50.pth: a torchvision, timm or mmpretrain ResNet-50):
#   python tools/model_converters/resnet_to_botnet.py R50.pth \
#     checkpoints/botnet50_from_resnet50_512x1024.pth --arch 50 --img-size 512 1024
_base_ = [
    '../_base_/models/upernet_botnet.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        img_size=crop_size,
        init_cfg=dict(checkpoint='checkpoints/botnet50_from_resnet50_512x1024.pth')),
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 683)))
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
# no weight decay on the relative-position tables, as in botnet50_in1k.py: position embeddings,
# which mmdet's and mmseg's Swin configs keep out of weight decay ('relative_position_bias_table')
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'rel_pos_': dict(decay_mult=0.)}))
auto_scale_lr = dict(enable=False, base_batch_size=16)  # 8 GPUs x 2 images (--auto-scale-lr)
