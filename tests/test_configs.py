"""Every config under configs/ loads, builds (pretrained loading stripped), wires the neck's and the
heads' in_channels to the backbone's real outputs, and runs one training forward (``mode='loss'``)
at a small input. One runner per ``default_scope``: mmdet (detectors), mmseg (segmentors) and
mmpretrain (classifiers)."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvit_hybrid.utils.config_utils import strip_pretrained

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(ROOT) for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)


pytestmark = pytest.mark.usefixtures('one_thread')


def random_images(num, h, w):
    """``num`` uint8 (3, h, w) images, as a dataloader packs them."""
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for _ in range(num)]


def check_backbone(path, backbone, x):
    """Run the backbone, check its outputs against ``out_channels``, return the features."""
    feats = backbone(x)
    assert [f.shape[1] for f in feats] == list(backbone.out_channels), \
        f'{path}: backbone outputs {[f.shape[1] for f in feats]} != out_channels {backbone.out_channels}'
    return feats


def check_neck(path, neck, feats):
    """The neck takes exactly the backbone's channels; return its outputs."""
    assert list(neck.in_channels) == [f.shape[1] for f in feats], \
        f'{path}: neck.in_channels {list(neck.in_channels)} != backbone outputs {[f.shape[1] for f in feats]}'
    return neck(feats)


def run_mmdet(path, cfg):
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    model = MODELS.build(cfg.model)
    model.init_weights()

    h, w = 128, 160
    feats = check_backbone(path, model.backbone, torch.rand(1, 3, h, w))
    check_neck(path, model.neck, feats)

    num_classes = cfg.model.get('roi_head', cfg.model).get('bbox_head', {}).get('num_classes', 80)
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    packed = demo_mm_inputs(batch_size=1, image_shapes=[(3, h, w)], num_items=[2],
                            num_classes=num_classes, with_mask=with_mask)
    data = model.data_preprocessor(packed, True)
    model.train()
    return model, model(**data, mode='loss')


def run_mmseg(path, cfg):
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    # two images (batch statistics of the pooled 1x1 PPM branch), cropped to h x w instead of the
    # config's crop size (the config's data_preprocessor pads every batch to its `size`)
    num, h, w = 2, 64, 96
    if cfg.model.get('data_preprocessor', {}).get('size') is not None:
        cfg.model.data_preprocessor.size = (h, w)
    model = MODELS.build(cfg.model)
    model.init_weights()

    feats = check_backbone(path, model.backbone, torch.rand(num, 3, h, w))
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

    num_classes = model.decode_head.num_classes
    samples = []
    for _ in range(num):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, h, w)))
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=random_images(num, h, w), data_samples=samples), True)
    model.train()
    return model, model(**data, mode='loss')


def run_mmpretrain(path, cfg):
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    # mmpretrain configs keep the data preprocessor at the top level; the Runner hands it to the model
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in cfg.model:
        cfg.model.data_preprocessor = cfg.data_preprocessor
    num, h, w = 2, 64, 64
    model = MODELS.build(cfg.model)
    model.init_weights()

    feats = check_backbone(path, model.backbone, torch.rand(num, 3, h, w))
    if model.with_neck:
        feats = model.neck(feats)
    assert model.head.in_channels == feats[-1].shape[1], \
        f'{path}: head.in_channels {model.head.in_channels} != last feature channels {feats[-1].shape[1]}'

    num_classes = model.head.num_classes
    samples = [DataSample().set_gt_label(int(torch.randint(0, num_classes, ()))) for _ in range(num)]
    data = model.data_preprocessor(dict(inputs=random_images(num, h, w), data_samples=samples), True)
    model.train()
    return model, model(**data, mode='loss')


RUNNERS = {'mmdet': run_mmdet, 'mmseg': run_mmseg, 'mmpretrain': run_mmpretrain}


def test_configs_found():
    assert Path('configs/dsnet/mask_rcnn_dsnet_s_coco.py') in CONFIGS
    assert Path('configs/dmformer/upernet_dmformer_s_ade20k.py') in CONFIGS
    assert Path('configs/dmformer/dmformer_s_in1k.py') in CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=str)
def test_config_builds_wires_and_runs(path):
    cfg = Config.fromfile(ROOT / path)
    assert 'mmvit_hybrid' in cfg.custom_imports['imports']
    assert cfg.custom_imports['allow_failed_imports'] is False
    strip_pretrained(cfg.model)
    scope = cfg.get('default_scope', 'mmdet')
    if scope not in RUNNERS:
        pytest.fail(f'{path}: no runner for default_scope {scope!r}; add one to tests/test_configs.py')
    init_default_scope(scope)
    model, losses = RUNNERS[scope](path, cfg)
    assert losses, f'{path}: no losses'
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total), f'{path}: loss {total}'
