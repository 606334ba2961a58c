"""Stop training at the first NaN/inf loss, naming the iteration, before anything is saved."""
import math
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _last_checkpoint(work_dir: str) -> str:
    path = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(path):
        with open(path) as f:
            return f.read().strip()
    return ''


@HOOKS.register_module()
class InvalidLossHook(Hook):
    """Raise ``FloatingPointError`` when a training loss is NaN or infinite.

    The check runs after every ``interval``-th training iteration with priority ``VERY_HIGH``, so
    before ``CheckpointHook``: the weights updated with the invalid loss are never written, and the
    last checkpoint (named in the message) stays the last good one. The message names the
    iteration (1-based, as in the log), the epoch and every invalid loss term.

    mmdet's ``CheckInvalidLossHook`` does the same check but only for mmdet configs and with an
    empty ``AssertionError``; this one is in the root registry (mmdet, mmseg, mmpretrain configs).

    Args:
        interval (int): check every ``interval`` iterations. Defaults to 1.
    """

    priority = 'VERY_HIGH'

    def __init__(self, interval: int = 1):
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'InvalidLossHook: interval must be a positive int, got {interval!r}')
        self.interval = interval

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        """Check ``outputs`` (the parsed losses) of this iteration."""
        if not self.every_n_train_iters(runner, self.interval) or not outputs:
            return
        bad = {}
        for name, value in outputs.items():
            if 'loss' not in name:
                continue
            value = float(value.detach().float().mean()) if isinstance(
                value, torch.Tensor) else float(value)
            if not math.isfinite(value):
                bad[name] = value
        if not bad:
            return
        last = _last_checkpoint(runner.work_dir)
        kept = (f'The last checkpoint, {last}, was written before this iteration and is kept; '
                f'resume from it with --resume {last} after fixing the cause'
                if last else 'No checkpoint had been written yet')
        terms = ', '.join(f'{k}={v}' for k, v in bad.items())
        raise FloatingPointError(
            f'Invalid loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): {terms}. '
            f'Training stopped; the weights updated with it are not saved. {kept}. Usual causes: '
            'a too high learning rate (lower optim_wrapper.optimizer.lr or set '
            'optim_wrapper.clip_grad), bad annotations (empty or degenerate boxes), a bad '
            'loss_weight, or AMP overflow.')
