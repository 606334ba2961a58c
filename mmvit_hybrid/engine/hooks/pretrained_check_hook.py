"""Stop at start-up, in one line, when a ``Pretrained`` init_cfg names a file that is not there.

The det/seg and fine-tune configs start from converted ImageNet weights
(``init_cfg=dict(type='Pretrained', checkpoint='checkpoints/...')``). Without this check a missing
file surfaces as a ``FileNotFoundError`` traceback from mmengine's checkpoint loader, after the
datasets are built. Each backbone's ``weights_source`` maps the files the configs name to the
command that makes each one (the converters in ``tools/model_converters/``, the published weights' URLs).
"""
import logging
import os.path as osp
from typing import Iterator, List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from mmvit_hybrid.models.backbones.base_backbone import HybridBackbone


def pretrained_source(checkpoint: str) -> Optional[dict]:
    """The backbone whose converted ImageNet weights ``checkpoint`` (a path) names, by its file
    name (:meth:`HybridBackbone.weights_source`), or None.

    Args:
        checkpoint (str): the ``init_cfg.checkpoint`` path.

    Returns:
        dict | None: ``backbone`` (type name), ``arch`` and ``command`` (what writes the file).
    """
    folder, name = osp.split(checkpoint)
    for backbone in HybridBackbone.__subclasses__():
        source = backbone.weights_source(name, folder or '.')
        if source is not None:
            return dict(backbone=backbone.__name__, arch=source[0], command=source[1])
    return None


def missing_message(checkpoint: str, key: str) -> str:
    """The one-line error for a missing ``checkpoint`` set at config key ``key``."""
    source = pretrained_source(checkpoint)
    make = (f'make it with: {source["command"]}' if source else
            'point it at an existing file (converters for published weights: tools/model_converters/)')
    return (f'{key} = {checkpoint!r} does not exist; {make} (or train the backbone from scratch with '
            '--cfg-options model.backbone.init_cfg=None)')


class MissingCheckpointError(SystemExit):
    """A ``Pretrained`` checkpoint file is missing. A ``SystemExit``: the interpreter prints the
    one-line message and exits with status 1, without a traceback, from any training script."""


def _pretrained_files(init_cfg, key: str) -> Iterator[Tuple[str, str]]:
    for i, cfg in enumerate(init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]):
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained' and cfg.get('checkpoint'):
            where = f'{key}.{i}' if isinstance(init_cfg, (list, tuple)) else key
            yield f'{where}.checkpoint', cfg['checkpoint']


def _cfg_pretrained_files(cfg, key='model') -> Iterator[Tuple[str, str]]:
    """``(dotted key, checkpoint)`` of every Pretrained init_cfg (and mmseg's ``pretrained``) in a
    model config."""
    if isinstance(cfg, dict):
        yield from _pretrained_files(cfg.get('init_cfg'), f'{key}.init_cfg')
        if isinstance(cfg.get('pretrained'), str):
            yield f'{key}.pretrained', cfg['pretrained']
        for k, v in cfg.items():
            if k not in ('init_cfg', 'pretrained'):
                yield from _cfg_pretrained_files(v, f'{key}.{k}')
    elif isinstance(cfg, (list, tuple)):
        for i, v in enumerate(cfg):
            yield from _cfg_pretrained_files(v, f'{key}.{i}')


def _raise_missing(files) -> None:
    missing = [(key, path) for key, path in files if '://' not in path and not osp.isfile(path)]
    if missing:
        raise MissingCheckpointError('; '.join(missing_message(path, key) for key, path in missing))


def check_pretrained_files(cfg) -> None:
    """Raise :class:`MissingCheckpointError` (one line) if a ``Pretrained`` file of ``cfg.model``
    is missing; URLs (``http://``, ``torchvision://``, ...) are left to mmengine.

    Args:
        cfg (Config | dict): the run's config.
    """
    _raise_missing(_cfg_pretrained_files(cfg.get('model', {})))


@HOOKS.register_module()
class PretrainedCheckHook(Hook):
    """Before the weights are initialised (``before_run`` precedes ``Runner._init_model_weights``),
    stop with :class:`MissingCheckpointError` if a module's ``Pretrained`` init_cfg names a missing
    file, and log a warning when the backbone trains from scratch (no ``Pretrained`` init_cfg, no
    ``load_from``, no resume).

    The det/seg/fine-tune configs list it in ``custom_hooks``, so the check also runs under
    mmdet's, mmseg's or mmpretrain's own ``tools/train.py``; this package's ``tools/train.py``
    additionally runs :func:`check_pretrained_files` before the datasets are built.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        """Check the model's Pretrained files; warn when the backbone starts from scratch."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        files: List[Tuple[str, str]] = []
        for name, module in model.named_modules():
            key = f'model.{name}.init_cfg' if name else 'model.init_cfg'
            files += _pretrained_files(getattr(module, 'init_cfg', None), key)
        _raise_missing(files)
        backbone = getattr(model, 'backbone', None)
        if backbone is None or runner._load_from or runner._resume:
            return
        if not list(_pretrained_files(getattr(backbone, 'init_cfg', None), 'model.backbone.init_cfg')):
            print_log(f'backbone trains from scratch: {type(backbone).__name__} has no Pretrained init_cfg '
                      f'(init_cfg={backbone.init_cfg!r}) and no load_from/resume is set. Expected for ImageNet '
                      'pre-training and the CPU demos; the det/seg/fine-tune configs load ImageNet weights by '
                      'default.', logger='current', level=logging.WARNING)
