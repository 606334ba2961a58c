"""Each recipe equals the source it names. The anchor of every check is the source: the values of
sail-sg/volo's README commands and main.py defaults, BIGBALLON/distribuuuu's config/botnet50.yaml and
its learning-rate function, and the installed mmdet/mmseg configs the configs cite (read from the
packages here, not copied). Learning-rate schedules are compared per epoch by running mmengine's
schedulers on a dummy optimizer against a transcription of the source's formula."""
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope

from mim_configs import mim_config

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures('one_thread', 'cached_config_metafiles')


def load(rel):
    return Config.fromfile(ROOT / rel)


def epoch_lrs(cfg, num_epochs):
    """The lr of each epoch under ``cfg.param_scheduler`` (epoch-based schedulers), as
    ParamSchedulerHook steps them after every epoch."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = []
    for sched in cfg.param_scheduler:
        sched = dict(sched)
        assert sched.get('by_epoch', True) and not sched.get('convert_to_iter_based'), sched
        schedulers.append(PARAM_SCHEDULERS.build(dict(sched, optimizer=optimizer)))
    lrs = []
    for _ in range(num_epochs):
        lrs.append(optimizer.param_groups[0]['lr'])
        for s in schedulers:
            s.step()
    return lrs


# ------------------------------------------------------------------ VOLO high-resolution fine-tunes
# sail-sg/volo README, "Finetune on 384 with 40 epoch based on the pretrained checkpoint on 224":
#   --lr 8.0e-6 --min-lr 4.0e-6 --epochs 30 --weight-decay 1.0e-8 --warmup-epochs 5 -b 64 (D1), -b 48 (D2),
#   -b 30 (D3, 448); main.py defaults: --warmup-lr 1e-6, --cooldown-epochs 10, --opt adamw; timm's
#   create_scheduler returns epochs + cooldown_epochs; CosineLRScheduler steps per epoch (t_in_epochs).
VOLO_FT = dict(lr=8e-6, min_lr=4e-6, epochs=30, cooldown_epochs=10, weight_decay=1e-8, warmup_epochs=5,
               warmup_lr=1e-6)
VOLO_FT_BATCH = {'volo_d1_384_in1k': 64, 'volo_d2_384_in1k': 48, 'volo_d3_448_in1k': 30}
VOLO_FT_CONFIGS = ['volo_d1_384_in1k', 'volo_d2_384_in1k', 'volo_d3_448_in1k', 'volo_d4_448_in1k',
                   'volo_d5_448_in1k', 'volo_d5_512_in1k']


@pytest.mark.parametrize('name', VOLO_FT_CONFIGS)
def test_volo_finetune_equals_sail_sg(name):
    cfg = load(f'configs/volo/{name}.py')
    src = VOLO_FT
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == src['lr']
    assert cfg.optim_wrapper.optimizer.weight_decay == src['weight_decay']
    assert cfg.train_cfg.max_epochs == src['epochs'] + src['cooldown_epochs']
    if name in VOLO_FT_BATCH:
        assert cfg.train_dataloader.batch_size == VOLO_FT_BATCH[name]
        assert cfg.auto_scale_lr.base_batch_size == 8 * VOLO_FT_BATCH[name]  # 8 GPUs
    lrs = epoch_lrs(cfg, src['epochs'] + src['cooldown_epochs'])
    # timm's warm-up: warmup_lr + t * (lr - warmup_lr) / warmup_t, t = 0 .. warmup_t - 1
    for t in range(src['warmup_epochs']):
        expected = src['warmup_lr'] + t * (src['lr'] - src['warmup_lr']) / src['warmup_epochs']
        assert lrs[t] == pytest.approx(expected, rel=1e-9), (t, lrs[t])
    # cool-down: the last 10 epochs at min_lr
    assert lrs[src['epochs']:] == pytest.approx([src['min_lr']] * src['cooldown_epochs'], rel=1e-9)
    # cosine in between: from lr down to min_lr
    decay = lrs[src['warmup_epochs']:src['epochs'] + 1]
    assert decay[0] == pytest.approx(src['lr']) and all(a >= b for a, b in zip(decay, decay[1:]))


# ------------------------------------------------------------------ BoT50 ImageNet (distribuuuu)
# BIGBALLON/distribuuuu config/botnet50.yaml: OPTIM BASE_LR 0.2, MOMENTUM 0.9, NESTEROV true,
# WEIGHT_DECAY 5e-5, MAX_EPOCH 100, LR_POLICY cos, MIN_LR 0, WARMUP_EPOCHS 5, WARMUP_FACTOR 0.1;
# TRAIN BATCH_SIZE 32 (x 8 GPUs = 256, README), IM_SIZE 224; TEST IM_SIZE 256 (Resize), crop 224.
DISTRIBUUUU = dict(base_lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-5, max_epoch=100, min_lr=0.,
                   warmup_epochs=5, warmup_factor=0.1, batch=32, gpus=8)


def distribuuuu_epoch_lr(cur_epoch, c=DISTRIBUUUU):
    """distribuuuu/utils.py get_epoch_lr with lr_fun_cos, transcribed."""
    lr = 0.5 * (1.0 + math.cos(math.pi * cur_epoch / c['max_epoch']))
    lr = ((1.0 - c['min_lr']) * lr + c['min_lr']) * c['base_lr']
    if cur_epoch < c['warmup_epochs']:
        alpha = cur_epoch / c['warmup_epochs']
        lr *= c['warmup_factor'] * (1.0 - alpha) + alpha
    return lr


@pytest.mark.parametrize('name', ['botnet50_in1k', 'botnet_s1_50_in1k'])
def test_botnet_imagenet_equals_distribuuuu(name):
    cfg, c = load(f'configs/botnet/{name}.py'), DISTRIBUUUU
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == \
        ('SGD', c['base_lr'], c['momentum'], c['nesterov'], c['weight_decay'])
    assert cfg.train_cfg.max_epochs == c['max_epoch']
    assert cfg.train_dataloader.batch_size == c['batch']
    assert cfg.auto_scale_lr.base_batch_size == c['batch'] * c['gpus']
    lrs = epoch_lrs(cfg, c['max_epoch'])
    assert lrs == pytest.approx([distribuuuu_epoch_lr(e) for e in range(c['max_epoch'])], rel=1e-9, abs=1e-12)
    train = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    test = {t['type']: t for t in cfg.test_dataloader.dataset.pipeline}
    assert train['RandomResizedCrop']['scale'] == 224 and 'RandomFlip' in train
    assert test['ResizeEdge']['scale'] == 256 and test['ResizeEdge']['edge'] == 'short'
    assert test['CenterCrop']['crop_size'] == 224
    # no label smoothing, no Mixup/CutMix: plain cross-entropy
    assert cfg.model.head.loss.type == 'CrossEntropyLoss' and not cfg.model.get('train_cfg')


# ------------------------------------------------------------------ COCO 3x: mmdet's ms-poly-3x
MMDET_MS_3X = 'common/ms-poly_3x_coco-instance.py'  # behind mask-rcnn_r50_fpn_ms-poly-3x_coco.py


def steps(pipeline, types):
    return [{k: v for k, v in t.items() if k != 'backend_args'} for t in pipeline if t['type'] in types]


@pytest.mark.parametrize('rel', ['configs/dsnet/mask_rcnn_dsnet_s_ms_3x_coco.py',
                                 'configs/botnet/mask_rcnn_botnet50_ms_3x_coco.py'])
def test_ms_3x_pipeline_and_steps_equal_mmdet(rel):
    cfg, src = load(rel), mim_config('mmdet', MMDET_MS_3X)
    types = ('LoadImageFromFile', 'LoadAnnotations', 'RandomResize', 'RandomFlip', 'PackDetInputs')
    assert [t['type'] for t in cfg.train_dataloader.dataset.pipeline] == list(types)
    assert steps(cfg.train_dataloader.dataset.pipeline, types) == steps(src.train_pipeline, types)
    # mmdet runs 12 epochs of a 3x RepeatDataset: the same iterations as 36 plain epochs
    times = src.train_dataloader.dataset.times
    assert cfg.train_cfg.max_epochs == src.train_cfg.max_epochs * times
    ours, theirs = cfg.param_scheduler[1], src.param_scheduler[1]
    assert ours.milestones == [m * times for m in theirs.milestones] and ours.gamma == theirs.gamma


def test_botnet_ms_3x_optimizer_equals_mmdet_r50():
    cfg, src = load('configs/botnet/mask_rcnn_botnet50_ms_3x_coco.py'), mim_config('mmdet', MMDET_MS_3X)
    assert cfg.optim_wrapper.optimizer == src.optim_wrapper.optimizer
    assert cfg.param_scheduler[0] == src.param_scheduler[0]  # 500 linear warm-up iterations


# ------------------------------------------------------------------ AdamW det schedules: mmdet's Swin-T
SWIN_1X = 'swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
SWIN_3X = 'swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'
ADAMW_1X = ['configs/dsnet/mask_rcnn_dsnet_s_coco.py', 'configs/dsnet/retinanet_dsnet_s_coco.py',
            'configs/volo/mask_rcnn_volo_d1_coco.py', 'configs/dmformer/mask_rcnn_dmformer_s_coco.py']


@pytest.mark.parametrize('rel', ADAMW_1X)
def test_adamw_1x_equals_swin(rel):
    cfg, src = load(rel), mim_config('mmdet', SWIN_1X)
    assert cfg.optim_wrapper.optimizer == src.optim_wrapper.optimizer
    assert cfg.param_scheduler == src.param_scheduler
    assert cfg.train_cfg.max_epochs == src.train_cfg.max_epochs


def test_dsnet_3x_schedule_equals_swin_3x():
    cfg, src = load('configs/dsnet/mask_rcnn_dsnet_s_ms_3x_coco.py'), mim_config('mmdet', SWIN_3X)
    assert cfg.optim_wrapper.optimizer == src.optim_wrapper.optimizer
    assert cfg.param_scheduler == src.param_scheduler
    assert cfg.train_cfg.max_epochs == src.train_cfg.max_epochs


# ------------------------------------------------------------------ UperNet AdamW: mmseg's Swin UperNet
SWIN_UPERNET = 'swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'


@pytest.mark.parametrize('rel', ['configs/dsnet/upernet_dsnet_t_ade20k.py', 'configs/volo/upernet_volo_d1_ade20k.py',
                                 'configs/dmformer/upernet_dmformer_s_ade20k.py'])
def test_upernet_adamw_equals_swin(rel):
    cfg, src = load(rel), mim_config('mmseg', SWIN_UPERNET)
    assert cfg.optim_wrapper.optimizer == src.optim_wrapper.optimizer
    assert cfg.param_scheduler == src.param_scheduler
    assert cfg.train_cfg.max_iters == src.train_cfg.max_iters
    assert cfg.train_dataloader.batch_size == src.train_dataloader.batch_size


# ------------------------------------------------------------------ attention dropout
# mmdet's Swin detection configs train without attention dropout (attn_drop_rate=0.); the DS-Net
# reference hard-codes attn_drop=0.1 (PaddleClas dsnet.py MixBlock), which the ImageNet configs keep.
DSNET_DENSE = sorted(p for p in (ROOT / 'configs/dsnet').glob('*.py') if not p.stem.endswith('_in1k'))


@pytest.mark.parametrize('path', DSNET_DENSE, ids=lambda p: p.name)
def test_dsnet_dense_configs_have_no_attention_dropout(path):
    src = mim_config('mmdet', SWIN_1X).model.backbone.attn_drop_rate
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.attn_drop_rate == src == 0.
    if cfg.model.get('neck', {}).get('type') == 'DSFPN':
        assert cfg.model.neck.attn_drop_rate == 0.


@pytest.mark.parametrize('arch', ['t', 's', 'b'])
def test_dsnet_imagenet_keeps_reference_attention_dropout(arch):
    import inspect

    from mmvit_hybrid.models import DSNet
    default = inspect.signature(DSNet).parameters['attn_drop_rate'].default
    assert load(f'configs/dsnet/dsnet_{arch}_in1k.py').model.backbone.get('attn_drop_rate', default) == 0.1


# ------------------------------------------------------------------ weight-decay exclusions
# mmdet's and mmseg's Swin configs keep the position tables out of weight decay
# ('relative_position_bias_table', 'absolute_pos_embed': decay_mult 0); BoTNet's relative tables and
# VOLO's position embedding are excluded the same way.
def decay_of(rel, names):
    """weight_decay of each named parameter in the optimizer the config builds (CPU model)."""
    from mmvit_hybrid.utils.config_utils import strip_pretrained
    cfg = load(rel)
    strip_pretrained(cfg.model)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    MODELS = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    by_id = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    return {n: by_id[id(p)] for n, p in model.named_parameters() if any(k in n for k in names)}, cfg


def test_swin_sources_exclude_position_tables():
    for package, rel in (('mmdet', SWIN_1X), ('mmseg', SWIN_UPERNET)):
        keys = mim_config(package, rel).optim_wrapper.paramwise_cfg.custom_keys
        assert keys['relative_position_bias_table']['decay_mult'] == 0.
        assert keys['absolute_pos_embed']['decay_mult'] == 0.


@pytest.mark.parametrize('rel', ['configs/botnet/botnet50_in1k.py', 'configs/botnet/mask_rcnn_botnet50_coco.py',
                                 'configs/botnet/mask_rcnn_botnet50_1024_3x_coco.py',
                                 'configs/botnet/upernet_botnet50_cityscapes.py'])
def test_botnet_relative_tables_get_no_weight_decay(rel):
    decays, cfg = decay_of(rel, ('rel_pos_', 'layer4.2.conv3.weight'))
    tables = {n: d for n, d in decays.items() if 'rel_pos_' in n}
    assert len(tables) == 6 and set(tables.values()) == {0.}, tables
    conv = [d for n, d in decays.items() if n.endswith('layer4.2.conv3.weight')]
    assert conv == [cfg.optim_wrapper.optimizer.weight_decay]


@pytest.mark.parametrize('rel', ['configs/volo/mask_rcnn_volo_d1_coco.py', 'configs/volo/upernet_volo_d1_ade20k.py'])
def test_volo_position_embedding_gets_no_weight_decay(rel):
    decays, _ = decay_of(rel, ('pos_embed', ))
    assert decays and set(decays.values()) == {0.}, decays
