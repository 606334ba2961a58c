"""Norms fit the batch: the detection and segmentation configs train at 2 images per GPU (8 GPUs),
where a plain BatchNorm normalises over 2 images; every BatchNorm that trains there must be
SyncBN (or frozen / in eval mode). Each config's model is built on the meta device, put in
training mode (which applies ``frozen_stages`` and ``norm_eval``), and every module is checked.

The CPU demos (configs/demo) are single-process runs with larger batches and plain BN by design;
they are not in the walk."""
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

from mmvit_hybrid.utils.config_utils import strip_pretrained

ROOT = Path(__file__).resolve().parents[1]
DENSE_SUFFIXES = ('_coco', '_ade20k', '_cityscapes')
DENSE = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py')
               if '_base_' not in p.parts and 'demo' not in p.parts and p.stem.endswith(DENSE_SUFFIXES))

pytestmark = pytest.mark.usefixtures('one_thread', 'cached_config_metafiles')


def build_meta(cfg):
    """The config's model on the meta device (shapes only), in training mode."""
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    models = {'mmdet': 'mmdet.registry', 'mmseg': 'mmseg.registry'}[scope]
    MODELS = __import__(models, fromlist=['MODELS']).MODELS
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    return model.train()


def trainable_plain_bn(model):
    """Names of the BatchNorms that train on the local batch: plain (not SyncBatchNorm), in
    training mode, with trainable affine parameters."""
    return [name for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) and not isinstance(m, nn.SyncBatchNorm) and m.training
            and any(p.requires_grad for p in m.parameters(recurse=False))]


def load(path):
    cfg = Config.fromfile(ROOT / path)
    strip_pretrained(cfg.model)
    return cfg


def test_walk_covers_the_dense_configs():
    assert len(DENSE) >= 35, DENSE
    for name in ('configs/dsnet/mask_rcnn_dsnet_s_coco.py', 'configs/dsnet/retinanet_dsnet_s_dsfpn_coco.py',
                 'configs/volo/upernet_volo_d5_cityscapes.py', 'configs/botnet/mask_rcnn_botnet50_coco.py'):
        assert name in DENSE


def test_plain_bn_is_caught():
    """The check itself: a DS-Net Mask R-CNN with plain BN in the backbone, and a DS-FPN with plain
    BN in its blocks, are flagged (what the configs had before they set SyncBN)."""
    cfg = load('configs/dsnet/mask_rcnn_dsnet_t_dsfpn_coco.py')
    cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.model.neck.block_norm_cfg = dict(type='BN', requires_grad=True)
    found = trainable_plain_bn(build_meta(cfg))
    assert any(n.startswith('backbone.') for n in found) and any(n.startswith('neck.ds_blocks') for n in found)
    # frozen or in eval mode, a plain BN does not train on the small batch: not flagged
    cfg.model.backbone.norm_eval = True
    assert not [n for n in trainable_plain_bn(build_meta(cfg)) if n.startswith('backbone.')]


@pytest.mark.parametrize('path', DENSE)
def test_no_trainable_plain_batchnorm(path):
    """Every BatchNorm that trains in a det/seg config is SyncBN."""
    found = trainable_plain_bn(build_meta(load(path)))
    assert not found, (f'{path}: {len(found)} plain BatchNorms train on 2 images per GPU, e.g. {found[:4]}; '
                       "use norm_cfg=dict(type='SyncBN', requires_grad=True)")
