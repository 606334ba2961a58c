"""What ``tools/train.py`` and ``tools/test.py`` set up around MMEngine's Runner.

* :func:`init_cpu_distributed`: torchrun (``--launcher pytorch``) on a machine without CUDA.
  mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` and fails there; this starts the
  ``gloo`` process group itself (the Runner then skips ``init_dist``) and makes the Runner wrap the
  model in ``MMDistributedDataParallel`` with ``device_ids=None`` (CPU DDP).
* :func:`enable_reliability_hooks`: atomic checkpoints, RNG states in checkpoints (exact resume) and
  a clear stop on NaN/inf losses.
"""
import datetime
import logging
import os

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log

__all__ = ['init_cpu_distributed', 'enable_reliability_hooks', 'check_amp_available']

DDP_WRAPPERS = ('MMDistributedDataParallel', 'DistributedDataParallel')


def _find_sync_bn(cfg, path='cfg'):
    """Yield the dotted keys of every ``type='SyncBN'``/``'MMSyncBN'`` in a config."""
    if isinstance(cfg, dict):
        if cfg.get('type') in ('SyncBN', 'MMSyncBN'):
            yield path
        for k, v in cfg.items():
            yield from _find_sync_bn(v, f'{path}.{k}')
    elif isinstance(cfg, (list, tuple)):
        for i, v in enumerate(cfg):
            yield from _find_sync_bn(v, f'{path}.{i}')


def init_cpu_distributed(cfg, training: bool = True) -> bool:
    """Start a ``gloo`` process group for a torchrun launch on a machine without CUDA.

    Does nothing (returns False) when ``cfg.launcher`` is ``'none'``, CUDA is available (mmengine's
    own ``init_dist`` then works) or a process group already exists.

    Args:
        cfg (Config): the run's config, with ``launcher`` set; ``env_cfg.dist_cfg`` may give
            ``timeout`` (seconds). Its ``model_wrapper_cfg`` is set (or completed) for CPU DDP.
        training (bool): whether the run trains; SyncBN is refused only then (in eval mode it
            does not synchronise). Defaults to True.

    Returns:
        bool: whether a process group was started.

    Raises:
        RuntimeError: a launcher other than ``pytorch`` without CUDA, torchrun's environment
            variables missing, or SyncBN in a model to train (torch's SyncBatchNorm has no CPU
            kernels).
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available() or torch_dist.is_initialized():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} without CUDA is not supported (mmengine 0.10.7 calls '
            'torch.cuda.set_device there). For CPU data-parallel training use torchrun: '
            'bash tools/dist_train.sh CONFIG NPROC [args...]')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError(
            f'--launcher pytorch needs the environment variables {", ".join(missing)}, which '
            'torchrun sets: start it with bash tools/dist_train.sh CONFIG NPROC (or '
            'python -m torch.distributed.run --nproc_per_node=N tools/train.py CONFIG '
            '--launcher pytorch)')
    if training:
        _refuse_sync_bn(cfg)
    _start_gloo_process_group(cfg)
    _use_cpu_ddp_wrapper(cfg)
    return True


def _refuse_sync_bn(cfg):
    """Raise if the model (or ``cfg.sync_bn``) asks for SyncBN: torch's has no CPU kernels."""
    sync_bn = list(_find_sync_bn(cfg.get('model', {}), 'model'))
    if sync_bn or cfg.get('sync_bn'):
        where = ', '.join(f'{k}.type' for k in sync_bn) or f"sync_bn={cfg.get('sync_bn')!r}"
        fix = ' '.join(f'{k}.type=BN' for k in sync_bn) or 'sync_bn=None'
        raise RuntimeError(
            f'SyncBN ({where}) needs CUDA: torch.nn.SyncBatchNorm has no CPU implementation. '
            f'For CPU DDP use plain BN, e.g. --cfg-options {fix} (each process then normalises '
            'over its own batch).')


def _start_gloo_process_group(cfg):
    """``init_process_group('gloo')`` with ``env_cfg.dist_cfg.timeout`` (seconds) if given."""
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}) or {})
    backend = dist_cfg.pop('backend', 'gloo')
    if backend != 'gloo':
        print_log(f'No CUDA: using the gloo backend instead of env_cfg.dist_cfg.backend='
                  f'{backend!r}.', logger='current', level=logging.WARNING)
    timeout = dist_cfg.pop('timeout', None)
    kwargs = dict(timeout=datetime.timedelta(seconds=timeout)) if timeout else {}
    torch_dist.init_process_group(backend='gloo', **kwargs)


def _use_cpu_ddp_wrapper(cfg):
    """Set (or complete) ``cfg.model_wrapper_cfg`` for DDP with the module on the CPU."""
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # what Runner.wrap_model builds by default, minus device_ids (None = module on CPU)
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif wrapper.get('type', 'MMDistributedDataParallel') in DDP_WRAPPERS:
        wrapper.setdefault('device_ids', None)


def check_amp_available(cfg) -> None:
    """Raise a clear error if the config asks for AMP on a machine without CUDA.

    Args:
        cfg (Config): the run's config.
    """
    wrapper = cfg.get('optim_wrapper', {}).get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper' and not torch.cuda.is_available():
        raise RuntimeError(
            'AMP (--amp, or optim_wrapper.type=AmpOptimWrapper) needs a CUDA GPU in mmengine '
            '0.10.7 and none is available here. Drop --amp (or set '
            'optim_wrapper.type=OptimWrapper) to train in float32 on CPU.')


def enable_reliability_hooks(cfg, training: bool = True) -> None:
    """Use :class:`AtomicCheckpointHook`, :class:`RNGStateHook`, :class:`InvalidLossHook`,
    :class:`CheckpointMatchHook` and :class:`InputCheckHook`.

    ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes ``AtomicCheckpointHook`` (same
    arguments); the others are appended to ``custom_hooks`` unless already there. A config can
    opt out with ``reliability_hooks = False``. For testing (``training=False``) only
    ``CheckpointMatchHook`` and ``InputCheckHook`` are added.

    Args:
        cfg (Config): the run's config (changed in place).
        training (bool): whether the run trains. Defaults to True.
    """
    if cfg.get('reliability_hooks', True) is False:
        return
    ckpt = cfg.get('default_hooks', {}).get('checkpoint')
    if training and isinstance(ckpt, dict) and ckpt.get('type') in ('CheckpointHook',
                                                                    'mmengine.CheckpointHook'):
        ckpt['type'] = 'AtomicCheckpointHook'
    custom = list(cfg.get('custom_hooks', None) or [])
    present = {h.get('type') for h in custom if isinstance(h, dict)}
    wanted = ('RNGStateHook', 'InvalidLossHook', 'CheckpointMatchHook', 'InputCheckHook') \
        if training else ('CheckpointMatchHook', 'InputCheckHook')
    for hook in wanted:
        if hook not in present:
            custom.append(dict(type=hook))
    cfg.custom_hooks = custom
