"""Every config under configs/ loads, builds (pretrained loading stripped), wires the neck's
in_channels to the backbone's real outputs, and runs one training forward at a small input."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(ROOT) for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)


def strip_pretrained(cfg):
    """Set every ``init_cfg`` of type Pretrained to None (no weights are downloaded in tests)."""
    if isinstance(cfg, dict):
        if isinstance(cfg.get('init_cfg'), dict) and cfg['init_cfg'].get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for value in cfg.values():
            strip_pretrained(value)
    elif isinstance(cfg, list):
        for value in cfg:
            strip_pretrained(value)


def test_configs_found():
    assert Path('configs/dsnet/mask_rcnn_dsnet_s_coco.py') in CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=str)
def test_config_builds_wires_and_runs(path):
    cfg = Config.fromfile(ROOT / path)
    assert 'mmvit_hybrid' in cfg.custom_imports['imports']
    assert cfg.custom_imports['allow_failed_imports'] is False
    strip_pretrained(cfg.model)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    if scope != 'mmdet':
        pytest.fail(f'{path}: no runner for default_scope {scope!r} in this test yet')
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    model = MODELS.build(cfg.model)
    model.init_weights()

    backbone = model.backbone
    h, w = 128, 160
    feats = backbone(torch.rand(1, 3, h, w))
    assert [f.shape[1] for f in feats] == backbone.out_channels
    assert list(model.neck.in_channels) == backbone.out_channels, \
        f'{path}: neck.in_channels {model.neck.in_channels} != backbone outputs {backbone.out_channels}'

    num_classes = cfg.model.get('roi_head', cfg.model).get('bbox_head', {}).get('num_classes', 80)
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    packed = demo_mm_inputs(batch_size=1, image_shapes=[(3, h, w)], num_items=[2],
                            num_classes=num_classes, with_mask=with_mask)
    data = model.data_preprocessor(packed, True)
    model.train()
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
