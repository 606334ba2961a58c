"""Every config under configs/ loads and builds (pretrained loading stripped) on the meta device
(shapes only, no arithmetic), and its neck's and heads' input widths, RoI strides and anchor
strides match what the backbone and neck really output (a meta forward at 128x160; configs with
the same backbone settings share its output shapes).

Configs whose models differ only in numbers (the backbone's ``arch``, widths, class counts,
drop-path rates, sizes: all of which the wiring check covers) or in their inference settings
share one model structure; the smallest config of each structure (``TRAINED``) also builds on the
CPU, initialises with its init_cfg, and runs one training forward (``mode='loss'``) at a small
input. One runner per ``default_scope``: mmdet (detectors), mmseg (segmentors) and mmpretrain
(classifiers)."""
import copy
import functools
import importlib
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvit_hybrid.utils.config_utils import strip_pretrained

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(ROOT) for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)
# the smallest config of each model structure (test_trained_configs_cover_every_structure derives
# this list from the configs)
TRAINED = [
    'configs/botnet/botnet50_in1k.py',
    'configs/botnet/mask_rcnn_botnet50_1024_3x_coco.py',
    'configs/botnet/mask_rcnn_botnet50_coco.py',
    'configs/botnet/upernet_botnet50_cityscapes.py',
    'configs/demo/dsnet_t_cls_demo.py',
    'configs/demo/mask_rcnn_dsnet_t_demo.py',
    'configs/demo/upernet_dsnet_t_demo.py',
    'configs/dmformer/dmformer_s_1level_in1k.py',
    'configs/dmformer/dmformer_s_in1k.py',
    'configs/dmformer/dmformer_s_level_gate_in1k.py',
    'configs/dmformer/dmformer_s_static_gate_in1k.py',
    'configs/dmformer/fpn_dmformer_s_ade20k.py',
    'configs/dmformer/mask_rcnn_dmformer_s_coco.py',
    'configs/dmformer/upernet_dmformer_s_cityscapes.py',
    'configs/dsnet/dsnet_t_in1k.py',
    'configs/dsnet/mask_rcnn_dsnet_t_coco.py',
    'configs/dsnet/mask_rcnn_dsnet_t_dsfpn_coco.py',
    'configs/dsnet/retinanet_dsnet_s_coco.py',
    'configs/dsnet/retinanet_dsnet_s_dsfpn_coco.py',
    'configs/dsnet/upernet_dsnet_t_cityscapes.py',
    'configs/volo/mask_rcnn_volo_d1_coco.py',
    'configs/volo/upernet_volo_d1_cityscapes.py',
    'configs/volo/volo_d1_384_in1k.py',
    'configs/volo/volo_d1_in1k.py',
]
# besides numbers, configs differing only in the backbone's arch name or in the inference settings
# (test_cfg: not used by a training forward) share one structure
IGNORED_KEYS = ('arch', 'test_cfg')
WIRE_SIZE = (128, 160)  # the meta input: every level of RetinaNet's P3-P7 has a whole stride

pytestmark = pytest.mark.usefixtures('one_thread', 'cached_config_metafiles')


@functools.lru_cache(maxsize=None)
def _load(path):
    cfg = Config.fromfile(ROOT / path)
    strip_pretrained(cfg.model)
    # mmpretrain configs keep the data preprocessor at the top level; the Runner hands it to the model
    if cfg.get('default_scope') == 'mmpretrain' and 'data_preprocessor' in cfg and 'data_preprocessor' not in cfg.model:
        cfg.model.data_preprocessor = cfg.data_preprocessor
    return cfg


def load(path):
    """The config (a copy: the runners change it), pretrained loading stripped."""
    return copy.deepcopy(_load(str(path)))


def build(cfg, device='cpu'):
    scope = cfg.get('default_scope', 'mmdet')
    if scope not in RUNNERS:
        pytest.fail(f'no runner for default_scope {scope!r}; add one to tests/test_configs.py')
    init_default_scope(scope)
    registry = {'mmdet': 'mmdet.registry', 'mmseg': 'mmseg.registry', 'mmpretrain': 'mmpretrain.registry'}[scope]
    MODELS = importlib.import_module(registry).MODELS
    with torch.device(device):
        model = MODELS.build(cfg.model)
    if device != 'meta':  # mmengine's init_weights reads parameter values
        model.init_weights()
    return model, scope


@functools.lru_cache(maxsize=None)
def build_meta(path):
    """The config's model on the meta device (built once per config: no memory, no values)."""
    return build(load(path), 'meta')


def structure(cfg):
    """The model config with every number and the IGNORED_KEYS left out, as JSON text: the module
    types, their arrangement and their string / boolean switches."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in IGNORED_KEYS}
        if isinstance(x, (list, tuple)):
            return [strip(v) for v in x]
        return None if isinstance(x, (int, float)) and not isinstance(x, bool) else x
    return json.dumps(strip(cfg.model.to_dict()), sort_keys=True, default=str)


def random_images(num, h, w):
    """``num`` uint8 (3, h, w) images, as a dataloader packs them."""
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for _ in range(num)]


def check_backbone(path, backbone, x):
    """Run the backbone, check its outputs against ``out_channels``, return the features."""
    feats = backbone(x)
    assert [f.shape[1] for f in feats] == list(backbone.out_channels), \
        f'{path}: backbone outputs {[f.shape[1] for f in feats]} != out_channels {backbone.out_channels}'
    return feats


_BACKBONE_SHAPES = {}


def meta_backbone_features(path, cfg, backbone, batch):
    """The backbone's outputs for a meta (batch, 3, *WIRE_SIZE) input, checked by check_backbone;
    backbones with the same settings (JSON of the config's backbone dict) run once."""
    key = json.dumps(cfg.model.backbone.to_dict(), sort_keys=True, default=str)
    if key not in _BACKBONE_SHAPES:
        _BACKBONE_SHAPES[key] = [f.shape for f in check_backbone(path, backbone, torch.empty(1, 3, *WIRE_SIZE))]
    return tuple(torch.empty(batch, *shape[1:]) for shape in _BACKBONE_SHAPES[key])


def check_neck(path, neck, feats):
    """The neck takes exactly the backbone's channels; return its outputs."""
    assert list(neck.in_channels) == [f.shape[1] for f in feats], \
        f'{path}: neck.in_channels {list(neck.in_channels)} != backbone outputs {[f.shape[1] for f in feats]}'
    return neck(feats)


# ------------------------------------------------------------------ wiring, on the meta device


def wire_mmdet(path, model, cfg):
    outs = check_neck(path, model.neck, meta_backbone_features(path, cfg, model.backbone, 1))
    strides = [WIRE_SIZE[0] // o.shape[-2] for o in outs]
    widths = {o.shape[1] for o in outs}
    assert len(widths) == 1, f'{path}: neck outputs of widths {widths}'
    dense = model.rpn_head if hasattr(model, 'rpn_head') else model.bbox_head
    assert dense.in_channels in widths, f'{path}: {type(dense).__name__}.in_channels {dense.in_channels} != {widths}'
    assert [s[0] for s in dense.prior_generator.strides] == strides, \
        f'{path}: anchor strides {dense.prior_generator.strides} != neck output strides {strides}'
    dense(outs)  # every level through the head's convs
    if not hasattr(model, 'roi_head'):
        return
    roi = model.roi_head
    for name in ('bbox', 'mask'):
        if not getattr(roi, f'with_{name}'):
            continue
        extractor, head = getattr(roi, f'{name}_roi_extractor'), getattr(roi, f'{name}_head')
        assert extractor.out_channels in widths, f'{path}: {name}_roi_extractor.out_channels {extractor.out_channels}'
        assert list(extractor.featmap_strides) == strides[:len(extractor.featmap_strides)], \
            f'{path}: {name}_roi_extractor.featmap_strides {extractor.featmap_strides} != neck strides {strides}'
        assert head.in_channels == extractor.out_channels, \
            f'{path}: {name}_head.in_channels {head.in_channels} != RoI features {extractor.out_channels}'
        size = extractor.roi_layers[0].output_size
        head(torch.empty(2, extractor.out_channels, *size))


def wire_mmseg(path, model, cfg):
    feats = meta_backbone_features(path, cfg, model.backbone, 2)
    if model.with_neck:
        feats = check_neck(path, model.neck, feats)
    channels = [f.shape[1] for f in feats]
    heads = [('decode_head', model.decode_head)]
    if model.with_auxiliary_head:
        aux = model.auxiliary_head
        heads += [(f'auxiliary_head.{i}', head) for i, head in enumerate(aux)] if isinstance(
            aux, torch.nn.ModuleList) else [('auxiliary_head', aux)]
    for name, head in heads:
        if isinstance(head.in_index, (list, tuple)):
            expected = [channels[i] for i in head.in_index]
            if head.input_transform == 'resize_concat':
                expected = sum(expected)
        else:
            expected = channels[head.in_index]
        assert head.in_channels == expected, \
            f'{path}: {name}.in_channels {head.in_channels} != features {expected} (in_index {head.in_index})'
        out = head(feats)
        assert out.shape[1] == head.num_classes, f'{path}: {name} predicts {out.shape[1]} classes'


def wire_mmpretrain(path, model, cfg):
    feats = meta_backbone_features(path, cfg, model.backbone, 2)
    if model.with_neck:
        feats = model.neck(feats)
    assert model.head.in_channels == feats[-1].shape[1], \
        f'{path}: head.in_channels {model.head.in_channels} != last feature channels {feats[-1].shape[1]}'
    logits = model.head(feats)
    assert logits.shape == (2, model.head.num_classes), f'{path}: logits {tuple(logits.shape)}'


# ------------------------------------------------------------------ one training forward, on the CPU


def run_mmdet(path, model, cfg):
    from mmdet.testing import demo_mm_inputs
    h, w = 128, 160
    num_classes = cfg.model.get('roi_head', cfg.model).get('bbox_head', {}).get('num_classes', 80)
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    packed = demo_mm_inputs(batch_size=1, image_shapes=[(3, h, w)], num_items=[2],
                            num_classes=num_classes, with_mask=with_mask)
    for aug in model.data_preprocessor.batch_augments or []:
        if hasattr(aug, 'size'):  # BatchFixedSizePad: a small canvas instead of the config's 1024x1024
            aug.size = (h + 32, w + 64)
    return model(**model.data_preprocessor(packed, True), mode='loss')


def run_mmseg(path, model, cfg):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    # two images (batch statistics of the pooled 1x1 PPM branch), cropped to h x w instead of the
    # config's crop size (the config's data_preprocessor pads every batch to its `size`)
    num, h, w = 2, 64, 96
    samples = []
    for _ in range(num):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, model.decode_head.num_classes, (1, h, w)))
        samples.append(sample)
    return model(**model.data_preprocessor(dict(inputs=random_images(num, h, w), data_samples=samples), True),
                 mode='loss')


def run_mmpretrain(path, model, cfg):
    from mmpretrain.structures import DataSample
    num, h, w = 2, 64, 64
    samples = [DataSample().set_gt_label(int(torch.randint(0, model.head.num_classes, ()))) for _ in range(num)]
    return model(**model.data_preprocessor(dict(inputs=random_images(num, h, w), data_samples=samples), True),
                 mode='loss')


WIRES = {'mmdet': wire_mmdet, 'mmseg': wire_mmseg, 'mmpretrain': wire_mmpretrain}
RUNNERS = {'mmdet': run_mmdet, 'mmseg': run_mmseg, 'mmpretrain': run_mmpretrain}


def test_configs_found():
    assert Path('configs/dsnet/mask_rcnn_dsnet_s_coco.py') in CONFIGS
    assert Path('configs/dmformer/upernet_dmformer_s_ade20k.py') in CONFIGS
    assert Path('configs/dmformer/dmformer_s_in1k.py') in CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=str)
def test_config_builds_and_wires(path):
    cfg = load(path)
    assert 'mmvit_hybrid' in cfg.custom_imports['imports']
    assert cfg.custom_imports['allow_failed_imports'] is False
    model, scope = build_meta(str(path))
    with torch.device('meta'):
        WIRES[scope](path, model.eval(), cfg)


def test_trained_configs_cover_every_structure():
    """TRAINED holds exactly the smallest config (by parameters) of each model structure."""
    groups = {}
    for path in CONFIGS:
        model, _ = build_meta(str(path))
        groups.setdefault(structure(load(path)), []).append((sum(p.numel() for p in model.parameters()), str(path)))
    expected = sorted(min(members)[1] for members in groups.values())
    assert TRAINED == expected, 'TRAINED must list one config per model structure: ' + json.dumps(expected, indent=1)


@pytest.mark.parametrize('path', TRAINED)
def test_config_trains(path):
    """Built on the CPU with the config's init, one training forward with finite losses."""
    cfg = load(path)
    model, scope = build(cfg)
    if scope == 'mmseg' and cfg.model.get('data_preprocessor', {}).get('size') is not None:
        model.data_preprocessor.size = (64, 96)  # pad to the small test crop, not the config's crop
    losses = RUNNERS[scope](path, model.train(), cfg)
    assert losses, f'{path}: no losses'
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total), f'{path}: loss {total}'
