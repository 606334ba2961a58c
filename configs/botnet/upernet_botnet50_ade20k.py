# UperNet, BoT50, ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images; mmseg's ResNet UperNet
# recipe (SGD lr 0.01, momentum 0.9, weight decay 5e-4, poly decay). Whole-image testing (shorter
# side 512): the tables are resampled to each image's feature maps.
# Weights: init_cfg expects checkpoints/botnet50_from_resnet50_512.pth
# (set in ../_base_/models/upernet_botnet.py),
# converted from a torchvision, timm or mmpretrain ResNet-50 (R50.pth) with
#   python tools/model_converters/resnet_to_botnet.py R50.pth \
#     checkpoints/botnet50_from_resnet50_512.pth --arch 50 --img-size 512 512
_base_ = [
    '../_base_/models/upernet_botnet.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(img_size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
# no weight decay on the relative-position tables, as in botnet50_in1k.py: position embeddings,
# which mmdet's and mmseg's Swin configs keep out of weight decay ('relative_position_bias_table')
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'rel_pos_': dict(decay_mult=0.)}))
auto_scale_lr = dict(enable=False, base_batch_size=16)  # 8 GPUs x 2 images (--auto-scale-lr)
