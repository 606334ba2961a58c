"""Layer-wise / stage-wise lr decay: ``LayerDecayOptimWrapperConstructor`` and the backbones'
``get_layer_depth``.

* Hand counts: one small model per family (stages of 2-1-2-1 blocks, so that block offsets and
  stage starts both show), the exponent of every parameter's ``rate ** k`` written out below by
  counting layers by hand, at rate 0.5 (each exponent gives another lr).
* VOLO against timm: timm's own ``param_groups_layer_decay`` on timm's ``volo_d1`` (the model the
  sail-sg/timm weights are for) gives each parameter an lr scale; ours, built through the
  constructor, must give the parameter it converts to (tools/model_converters/volo_to_mmvit.py)
  the same scale.
* mmpretrain: where mmpretrain's own constructor works (an ImageClassifier), ours gives the same lrs.
* mmdet Mask R-CNN and mmseg UperNet configs of this package build the wrapper through their own
  registries (default scope mmdet / mmseg); neck and heads keep the base lr.
"""
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import mmvit_hybrid  # noqa: F401  (registers the constructor and the backbones)
from mmvit_hybrid.engine.optimizers import LayerDecayOptimWrapperConstructor
from mmvit_hybrid.models import DMFormer, DSNet, VOLO

ROOT = Path(__file__).resolve().parents[1]
BASE_LR, RATE = 1e-3, 0.5
OPTIM = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=0.05))
DEPTHS = (2, 1, 2, 1)
VOLO_ARCH = dict(depths=DEPTHS, embed_dims=(16, 32, 32, 32), num_heads=(2, 4, 4, 4), mlp_ratio=2, stem_channels=8)
DSNET_ARCH = dict(depths=DEPTHS, embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 3, 4))
DMFORMER_ARCH = dict(depths=DEPTHS, embed_dims=(16, 32, 48, 64))

# lr = BASE_LR * RATE ** k; k for each parameter name prefix, counted by hand. Layer-wise: one id per
# block from the stem (0) up, the parameters after the backbone on top (k = 0).
# VOLO (timm's grouping): stem 0 | outlookers 1, 2 | downsample 3 | blocks 4; 5, 6; 7 | class blocks
# 8, 9 (final norm with 9) | head 10: k = 10 - id.
VOLO_CLS_LAYER_WISE = {
    'backbone.patch_embed.': 10, 'backbone.pos_embed': 10, 'backbone.cls_token': 10,
    'backbone.stages.0.0.': 9, 'backbone.stages.0.1.': 8, 'backbone.downsample.': 7, 'backbone.stages.1.0.': 6,
    'backbone.stages.2.0.': 5, 'backbone.stages.2.1.': 4, 'backbone.stages.3.0.': 3,
    'backbone.cls_blocks.0.': 2, 'backbone.cls_blocks.1.': 1, 'backbone.norm.': 1, 'head.': 0}
# stage-wise: stem 0 | stage 0: 1 | downsample and stage 1: 2 | 3 | 4 | class part 5 | head 6
VOLO_CLS_STAGE_WISE = {
    'backbone.patch_embed.': 6, 'backbone.pos_embed': 6, 'backbone.cls_token': 6, 'backbone.stages.0.': 5,
    'backbone.downsample.': 4, 'backbone.stages.1.': 4, 'backbone.stages.2.': 3, 'backbone.stages.3.': 2,
    'backbone.cls_blocks.': 1, 'backbone.norm.': 1, 'head.': 0}
# dense VOLO: no class part; output norms and resamplers are new layers (with the neck): 8 - id
VOLO_DENSE_LAYER_WISE = {
    'backbone.patch_embed.': 8, 'backbone.pos_embed': 8, 'backbone.stages.0.0.': 7, 'backbone.stages.0.1.': 6,
    'backbone.downsample.': 5, 'backbone.stages.1.0.': 4, 'backbone.stages.2.0.': 3, 'backbone.stages.2.1.': 2,
    'backbone.stages.3.0.': 1, 'backbone.out_norms.': 0, 'backbone.resamplers.': 0, 'neck.': 0}
# DS-Net (timm's ConvNeXt grouping): stem (first patch embed) 0 | blocks 1, 2; 3; 4, 5; 6, a stage's
# downsampling conv with its first block, the final norm with the last block | neck 7: k = 7 - id
DSNET_LAYER_WISE = {
    'backbone.stages.0.downsample.': 7, 'backbone.stages.0.blocks.0.': 6, 'backbone.stages.0.blocks.1.': 5,
    'backbone.stages.1.downsample.': 4, 'backbone.stages.1.blocks.0.': 4, 'backbone.stages.2.downsample.': 3,
    'backbone.stages.2.blocks.0.': 3, 'backbone.stages.2.blocks.1.': 2, 'backbone.stages.3.': 1,
    'backbone.norm.': 1, 'neck.': 0}
DSNET_STAGE_WISE = {
    'backbone.stages.0.downsample.': 5, 'backbone.stages.0.blocks.': 4, 'backbone.stages.1.': 3,
    'backbone.stages.2.': 2, 'backbone.stages.3.': 1, 'backbone.norm.': 1, 'neck.': 0}
# DMFormer: as DS-Net, each stage's output norm with its last block
DMFORMER_LAYER_WISE = {
    'backbone.stages.0.downsample.': 7, 'backbone.stages.0.blocks.0.': 6, 'backbone.stages.0.blocks.1.': 5,
    'backbone.stages.0.norm.': 5, 'backbone.stages.1.': 4, 'backbone.stages.2.downsample.': 3,
    'backbone.stages.2.blocks.0.': 3, 'backbone.stages.2.blocks.1.': 2, 'backbone.stages.2.norm.': 2,
    'backbone.stages.3.': 1, 'neck.': 0}
DMFORMER_STAGE_WISE = {
    'backbone.stages.0.downsample.': 5, 'backbone.stages.0.blocks.': 4, 'backbone.stages.0.norm.': 4,
    'backbone.stages.1.': 3, 'backbone.stages.2.': 2, 'backbone.stages.3.': 1, 'neck.': 0}


class Dense(nn.Module):
    """What the constructor sees of a detector/segmentor: ``backbone`` and the layers after it."""

    def __init__(self, backbone: nn.Module, after: str = 'neck'):
        super().__init__()
        self.backbone = backbone
        self.add_module(after, nn.Linear(4, 4))


def param_lrs(model: nn.Module, **paramwise) -> dict:
    """``{parameter name: lr}`` of the optimizer the constructor builds (one parameter per group)."""
    wrapper = LayerDecayOptimWrapperConstructor(OPTIM, dict(layer_decay_rate=RATE, **paramwise))(model)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = wrapper.optimizer.param_groups
    assert all(len(g['params']) == 1 for g in groups)
    lrs = {names[id(g['params'][0])]: g['lr'] for g in groups}
    assert sorted(lrs) == sorted(n for n, p in model.named_parameters() if p.requires_grad)
    return lrs


def assert_hand_count(lrs: dict, table: dict):
    used = set()
    for name, lr in lrs.items():
        prefix = max((p for p in table if name.startswith(p)), key=len, default=None)
        assert prefix is not None, f'{name} is not in the hand count'
        used.add(prefix)
        assert lr == pytest.approx(BASE_LR * RATE ** table[prefix], rel=1e-12), \
            f'{name}: lr {lr:.3e} = rate ** {torch.tensor(lr / BASE_LR).log2().neg().item():.1f}, hand count {table[prefix]}'
    assert used == set(table), f'hand-count entries without a parameter: {set(table) - used}'


@pytest.mark.parametrize('decay_type, table', [('layer_wise', VOLO_CLS_LAYER_WISE), ('stage_wise', VOLO_CLS_STAGE_WISE)])
def test_volo_classifier_hand_count(decay_type, table):
    model = Dense(VOLO(VOLO_ARCH, img_size=64, out_type='cls_and_tokens'), after='head')
    assert_hand_count(param_lrs(model, decay_type=decay_type), table)


def test_volo_dense_hand_count():
    backbone = VOLO(VOLO_ARCH, img_size=64, out_strides=(4, 8, 16, 32))
    assert len(backbone.resamplers) == 3
    assert_hand_count(param_lrs(Dense(backbone)), VOLO_DENSE_LAYER_WISE)


@pytest.mark.parametrize('decay_type, table', [('layer_wise', DSNET_LAYER_WISE), ('stage_wise', DSNET_STAGE_WISE)])
def test_dsnet_hand_count(decay_type, table):
    assert_hand_count(param_lrs(Dense(DSNet(DSNET_ARCH)), decay_type=decay_type), table)


@pytest.mark.parametrize('decay_type, table',
                         [('layer_wise', DMFORMER_LAYER_WISE), ('stage_wise', DMFORMER_STAGE_WISE)])
def test_dmformer_hand_count(decay_type, table):
    assert_hand_count(param_lrs(Dense(DMFormer(DMFORMER_ARCH)), decay_type=decay_type), table)


def test_frozen_parameters_get_no_group_and_a_bare_backbone_works():
    """``frozen_stages`` parameters are left out (mmpretrain's rule); a backbone given alone uses
    its own get_layer_depth with no prefix."""
    lrs = param_lrs(DSNet(DSNET_ARCH, frozen_stages=1))  # the stem and stage 0
    assert not any(n.startswith('stages.0.') for n in lrs) and 'stages.1.blocks.0.cpe.weight' in lrs
    assert lrs['stages.2.blocks.1.norm1.weight'] == pytest.approx(BASE_LR * RATE ** 2)
    assert lrs['norm.weight'] == pytest.approx(BASE_LR * RATE)


def test_volo_d1_layer_scales_equal_timms():
    """timm's ``param_groups_layer_decay`` (its grouping for its own ``volo_d1``) and ours agree on
    every parameter, matched by the converter's name mapping."""
    import runpy
    import timm
    from timm.optim import param_groups_layer_decay
    from mmvit_hybrid.models import VOLOHead
    convert_key = runpy.run_path(str(ROOT / 'tools/model_converters/volo_to_mmvit.py'))['convert_key']
    rate = 0.75
    with torch.device('meta'):
        ref = timm.create_model('volo_d1_224')
        ours = Dense(VOLO('d1', out_type='cls_and_tokens'), after='head')
        ours.head = VOLOHead(1000, 384)
    names = {id(p): n for n, p in ref.named_parameters()}
    timm_scale = {names[id(p)]: g['lr_scale'] for g in param_groups_layer_decay(ref, layer_decay=rate)
                  for p in g['params']}
    constructor = LayerDecayOptimWrapperConstructor(OPTIM, dict(layer_decay_rate=rate))
    params = []
    constructor.add_params(params, ours)
    our_scale = {g['param_name']: g['lr'] / BASE_LR for g in params}
    assert len(timm_scale) == len(our_scale) == len(list(ref.parameters()))
    assert len(set(timm_scale.values())) > 20  # one scale per layer: a real comparison
    for name, scale in timm_scale.items():
        assert our_scale[convert_key(name)] == pytest.approx(scale, rel=1e-9), name


def test_same_lrs_as_mmpretrains_constructor_on_an_image_classifier():
    """mmpretrain's LearningRateDecayOptimWrapperConstructor asks the classifier, which asks the
    backbone (layer-wise): on this package's DMFormer ImageNet config both give the same lrs."""
    from mmengine.config import Config
    from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(ROOT / 'configs/dmformer/dmformer_s_in1k.py'))
    classifier = MODELS.build(cfg.model)
    paramwise = dict(layer_decay_rate=0.8, norm_decay_mult=0., custom_keys={'.gamma': dict(decay_mult=0.)})
    groups = []
    for cls in (LearningRateDecayOptimWrapperConstructor, LayerDecayOptimWrapperConstructor):
        params = []
        cls(OPTIM, paramwise).add_params(params, classifier)
        groups.append({g['param_name']: (g['lr'], g['weight_decay']) for g in params})
    assert groups[0] == groups[1]
    assert groups[1]['head.fc.weight'] == (BASE_LR, 0.05)
    assert groups[1]['backbone.stages.0.blocks.0.gamma1'] == (pytest.approx(BASE_LR * 0.8 ** 19), 0.)


@pytest.mark.parametrize('scope, config', [
    ('mmdet', 'configs/dsnet/mask_rcnn_dsnet_t_coco.py'),
    ('mmdet', 'configs/dmformer/mask_rcnn_dmformer_s_coco.py'),
    ('mmseg', 'configs/volo/upernet_volo_d1_ade20k.py'),
    ('mmseg', 'configs/dmformer/upernet_dmformer_s_ade20k.py'),
])
def test_dense_configs_build_the_wrapper_through_their_registries(scope, config):
    """mmengine's ``build_optim_wrapper`` under the config's default scope, and the scope's own
    ``OPTIM_WRAPPER_CONSTRUCTORS``, find the constructor by name; every backbone parameter gets its
    layer's lr, every neck/head parameter the base lr."""
    import importlib
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    registry = importlib.import_module(f'{scope}.registry')
    cfg = Config.fromfile(str(ROOT / config))
    assert cfg.default_scope == scope
    model = registry.MODELS.build(cfg.model)
    optim_cfg = dict(OPTIM, constructor='LayerDecayOptimWrapperConstructor',
                     paramwise_cfg=dict(layer_decay_rate=0.9, decay_type='stage_wise'))
    assert registry.OPTIM_WRAPPER_CONSTRUCTORS.get('LayerDecayOptimWrapperConstructor') \
        is LayerDecayOptimWrapperConstructor
    with DefaultScope.overwrite_default_scope(scope):
        wrapper = build_optim_wrapper(model, optim_cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    lrs = {names[id(g['params'][0])]: g['lr'] for g in wrapper.optimizer.param_groups}
    assert len(lrs) == sum(p.requires_grad for p in model.parameters())
    stem = next(n for n in lrs if n.startswith(('backbone.patch_embed.', 'backbone.stages.0.downsample.')))
    assert lrs[stem] == pytest.approx(BASE_LR * 0.9 ** 5)  # stage-wise: stem, 4 stages, then the rest
    for name, lr in lrs.items():
        if name.startswith('backbone.'):
            layer_id, num_layers = model.backbone.get_layer_depth(name, 'backbone.', decay_type='stage_wise')
            assert num_layers == 6 and lr == pytest.approx(BASE_LR * 0.9 ** (num_layers - layer_id - 1)), name
        else:
            assert lr == BASE_LR, name
    assert sum(not n.startswith('backbone.') for n in lrs) > 10  # the neck and heads are there


def test_bad_paramwise_cfg_is_a_clear_error():
    with pytest.raises(ValueError, match=r'layer_decay_rate must be a number in \(0, 1\]'):
        LayerDecayOptimWrapperConstructor(OPTIM, dict(decay_type='layer_wise'))
    with pytest.raises(ValueError, match="paramwise_cfg.decay_rate is not used: use 'layer_decay_rate'"):
        LayerDecayOptimWrapperConstructor(OPTIM, dict(decay_rate=0.9, layer_decay_rate=0.9))
    with pytest.raises(ValueError, match='decay_type must be one of'):
        LayerDecayOptimWrapperConstructor(OPTIM, dict(layer_decay_rate=0.9, decay_type='block_wise'))
    with pytest.raises(ValueError, match=r"custom_keys \['head'\] set lr_mult"):
        LayerDecayOptimWrapperConstructor(OPTIM, dict(layer_decay_rate=0.9, custom_keys={'head': dict(lr_mult=10.)}))
    with pytest.raises(NotImplementedError, match='has get_layer_depth'):
        LayerDecayOptimWrapperConstructor(OPTIM, dict(layer_decay_rate=0.9))(Dense(nn.Conv2d(3, 4, 1)))
    with pytest.raises(ValueError, match='decay_type argument'):  # mmpretrain's ViT is layer-wise only
        from mmpretrain.models import VisionTransformer
        vit = VisionTransformer(arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
                                img_size=32, patch_size=16)
        LayerDecayOptimWrapperConstructor(OPTIM, dict(layer_decay_rate=0.9, decay_type='stage_wise'))(Dense(vit))
    with pytest.raises(ValueError, match='decay_type must be one of'):
        DSNet(DSNET_ARCH).get_layer_depth('stages.0.blocks.0.cpe.weight', decay_type='layerwise')


def anchor_paramwise(package: str, rel: str) -> dict:
    """``paramwise_cfg`` of an installed mmdet/mmseg config (the anchor a config here cites)."""
    from mim_configs import mim_config
    return mim_config(package, rel).optim_wrapper.paramwise_cfg


MMDET_CONVNEXT = ('mmdet', 'convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py')
MMSEG_CONVNEXT = ('mmseg', 'convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py')
MMSEG_BEIT_B = ('mmseg', 'beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py')
MMSEG_BEIT_L = ('mmseg', 'beit/beit-large_upernet_8xb1-amp-160k_ade20k-640x640.py')
DENSE_CONFIGS = sorted(str(p.relative_to(ROOT)) for family in ('dsnet', 'volo')
                       for p in (ROOT / 'configs' / family).glob('*.py')
                       if p.name.startswith(('mask_rcnn_', 'retinanet_', 'upernet_')))


def expected_decay(config: str):
    """``(layer_decay_rate, decay_type)`` a dense config must use, from the anchor its comment names."""
    if '/dsnet/' in config:
        if 'upernet' in config:  # mmseg's ConvNeXt UperNet: rate and type
            anchor = anchor_paramwise(*MMSEG_CONVNEXT)
            return anchor['decay_rate'], anchor['decay_type']
        return anchor_paramwise(*MMDET_CONVNEXT)['decay_rate'], 'stage_wise'  # mmdet's ConvNeXt rate
    anchor = MMSEG_BEIT_B if '_d1_' in config else MMSEG_BEIT_L  # BEiT-B 12 blocks / BEiT-L 24 blocks
    return anchor_paramwise(*anchor)['layer_decay_rate'], 'layer_wise'


def test_dense_configs_cover_both_families():
    assert len([c for c in DENSE_CONFIGS if '/dsnet/' in c]) == 14
    assert len([c for c in DENSE_CONFIGS if '/volo/' in c]) == 12


@pytest.mark.parametrize('config', DENSE_CONFIGS)
def test_volo_and_dsnet_dense_configs_use_the_anchors_layer_decay(config):
    """Every VOLO and DS-Net det/seg config fine-tunes with layer/stage decay at its anchor's rate,
    and keeps its weight-decay exclusions (norms; VOLO's position embedding)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(ROOT / config))
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert cfg.optim_wrapper.constructor == 'LayerDecayOptimWrapperConstructor'
    assert (paramwise.layer_decay_rate, paramwise.decay_type) == expected_decay(config)
    assert paramwise.norm_decay_mult == 0.
    if '/volo/' in config:
        assert paramwise.custom_keys['pos_embed'] == dict(decay_mult=0.)


def volo_dense_exponents(depths) -> dict:
    """VOLO dense layer-wise exponents k (lr = base * rate ** k) from the stage depths (the paper's
    Table 1): stem 0, outlookers 1..d0, downsampling conv, then one id per transformer block; the
    output norms, resamplers and heads on top."""
    num_layers = sum(depths) + 3
    table, layer_id = {'backbone.patch_embed.': num_layers - 1, 'backbone.pos_embed': num_layers - 1}, 1
    for stage, depth in enumerate(depths):
        if stage == 1:
            table['backbone.downsample.'] = num_layers - 1 - layer_id
            layer_id += 1
        for block in range(depth):
            table[f'backbone.stages.{stage}.{block}.'] = num_layers - 1 - layer_id
            layer_id += 1
    return dict(table, **{'backbone.out_norms.': 0, 'backbone.resamplers.': 0, 'decode_head.': 0,
                          'auxiliary_head.': 0})


# DS-Net-T (paper Table 1: 2, 2, 4, 1 blocks), stage-wise: stem, 4 stages (the final norm with the
# last), then the neck and heads
DSNET_T_MASK_RCNN = {'backbone.stages.0.downsample.': 5, 'backbone.stages.0.blocks.': 4, 'backbone.stages.1.': 3,
                     'backbone.stages.2.': 2, 'backbone.stages.3.': 1, 'backbone.norm.': 1, 'neck.': 0,
                     'rpn_head.': 0, 'roi_head.': 0}


@pytest.mark.parametrize('scope, config, table, weight_decay', [
    ('mmdet', 'configs/dsnet/mask_rcnn_dsnet_t_coco.py', DSNET_T_MASK_RCNN, {'backbone.stages.1.blocks.0.ffn.0.weight': 0.05,
                                                                            'backbone.stages.1.blocks.0.norm1.weight': 0.}),
    ('mmseg', 'configs/volo/upernet_volo_d1_ade20k.py', volo_dense_exponents((4, 4, 8, 2)),
     {'backbone.pos_embed': 0., 'backbone.stages.1.0.norm1.weight': 0., 'backbone.stages.1.0.ffn.layers.0.0.weight': 0.01,
      'backbone.stages.1.0.ffn.layers.0.0.bias': 0.}),
])
def test_config_optim_wrapper_lrs_equal_the_hand_count(scope, config, table, weight_decay):
    """The config's own ``optim_wrapper``, built through mmengine under the config's scope, gives
    every parameter ``lr * rate ** k`` with k counted by hand from the paper's depths, and the
    config's weight decay."""
    import importlib
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(str(ROOT / config))
    model = importlib.import_module(f'{scope}.registry').MODELS.build(cfg.model)
    with DefaultScope.overwrite_default_scope(scope):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base_lr, rate = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {names[id(g['params'][0])]: g for g in wrapper.optimizer.param_groups}
    assert len(groups) == sum(p.requires_grad for p in model.parameters())
    used = set()
    for name, group in groups.items():
        prefix = max((p for p in table if name.startswith(p)), key=len, default=None)
        assert prefix is not None, f'{name} is not in the hand count'
        used.add(prefix)
        assert group['lr'] == pytest.approx(base_lr * rate ** table[prefix], rel=1e-9), name
    assert used == set(table)
    for name, decay in weight_decay.items():
        assert groups[name]['weight_decay'] == pytest.approx(decay), name
