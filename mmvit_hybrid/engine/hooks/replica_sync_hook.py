"""Check that DDP replicas hold the same weights; optionally dump each rank's weights."""
import os
import os.path as osp

import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def weight_fingerprint(model: torch.nn.Module) -> dict:
    """Per-tensor ``(sum, sum of squares, sum of i*x)`` in float64 over parameters and buffers."""
    out = {}
    for name, t in model.state_dict().items():
        if not torch.is_floating_point(t):
            continue
        x = t.detach().double().flatten()
        idx = torch.arange(1, x.numel() + 1, dtype=torch.float64)
        out[name] = (float(x.sum()), float((x * x).sum()), float((x * idx).sum()))
    return out


@HOOKS.register_module()
class ReplicaSyncHook(Hook):
    """Raise ``RuntimeError`` if the ranks' weights differ after a training iteration.

    Every ``interval`` iterations each rank computes a fingerprint of its model's floating-point
    parameters and buffers; the fingerprints are gathered and compared exactly (DDP replicas must
    stay bit-identical). The error names the first tensor that differs. Without DDP it does
    nothing, unless ``dump_dir`` is set.

    Args:
        interval (int): check every ``interval`` iterations. Defaults to 1.
        dump_dir (str, optional): also save each rank's ``state_dict`` and loss outputs to
            ``dump_dir/rank{R}_iter{I}.pth`` (for tests and debugging). Defaults to None.
        check_buffers (bool): compare buffers too. Under mmengine's default DDP wrapper
            (``broadcast_buffers=False``) BN running statistics legitimately differ between ranks
            (each sees its own batch), so only parameters are compared by default.
            Defaults to False.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1, dump_dir=None, check_buffers: bool = False):
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'ReplicaSyncHook: interval must be a positive int, got {interval!r}')
        self.interval = interval
        self.dump_dir = dump_dir
        self.check_buffers = check_buffers

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        """Compare (and optionally dump) the weights of all ranks."""
        if not self.every_n_train_iters(runner, self.interval):
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        rank, world_size = get_dist_info()
        if self.dump_dir is not None:
            os.makedirs(self.dump_dir, exist_ok=True)
            torch.save(
                dict(rank=rank, world_size=world_size, iter=runner.iter + 1,
                     state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                     outputs={k: float(v) for k, v in (outputs or {}).items()}),
                osp.join(self.dump_dir, f'rank{rank}_iter{runner.iter + 1}.pth'))
        if world_size == 1:
            return
        fingerprint = weight_fingerprint(model)
        if not self.check_buffers:
            params = {n for n, _ in model.named_parameters()}
            fingerprint = {k: v for k, v in fingerprint.items() if k in params}
        gathered = all_gather_object(fingerprint)
        for other_rank, other in enumerate(gathered[1:], start=1):
            for name, value in gathered[0].items():
                if other.get(name) != value:
                    raise RuntimeError(
                        f'DDP replicas diverged after iteration {runner.iter + 1}: {name} differs '
                        f'between rank 0 and rank {other_rank} ({value} vs {other.get(name)}). '
                        'Check for parameters updated outside the optimizer, rank-dependent '
                        'code, or unused parameters (set find_unused_parameters=True).')
