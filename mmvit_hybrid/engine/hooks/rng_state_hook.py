"""Save the random number generators' states in checkpoints and restore them on resume."""
import random
import warnings

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

CKPT_KEY = 'rng_states'


def get_rng_state() -> dict:
    """The states of Python's, numpy's and torch's (CPU and CUDA) global generators."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore states returned by :func:`get_rng_state`."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Make ``--resume`` replay the random draws of an uninterrupted run.

    mmengine 0.10.7 re-seeds on resume (``randomness.seed``) but does not restore the generators'
    states, so the draws after a resume (data augmentation, stochastic depth, RoI sampling) differ
    from those of an uninterrupted run with the same seed. This hook stores every rank's
    Python/numpy/torch generator states in the checkpoint (key ``'rng_states'``, one entry per rank)
    and restores this rank's entry when the run is resumed (not on ``load_from``), at
    ``before_train``.

    The states are taken at the end of each training iteration and epoch, after the other hooks
    but before ``CheckpointHook`` (priority ``LOW``), i.e. where the checkpoint is written; under
    DDP they are gathered from all ranks there (rank 0 alone writes the checkpoint).

    Exact replay also needs ``randomness.deterministic=True``, the same number of processes and
    ``num_workers=0`` (worker processes draw from their own generators).

    Args:
        gather_every_iter (bool): under DDP, gather the states after every iteration (needed for
            iteration-based checkpoints). Defaults to True. Without DDP the states are local and
            cost nothing.
    """

    priority = 'LOW'

    def __init__(self, gather_every_iter: bool = True):
        self.gather_every_iter = gather_every_iter
        self._states = None
        self._to_restore = None

    def _capture(self):
        _, world_size = get_dist_info()
        state = get_rng_state()
        self._states = all_gather_object(state) if world_size > 1 else [state]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        """Capture the states where an iteration-based checkpoint would be taken."""
        if self.gather_every_iter or get_dist_info()[1] == 1:
            self._capture()

    def after_train_epoch(self, runner) -> None:
        """Capture the states where an epoch-based checkpoint would be taken."""
        self._capture()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the captured states (or this process's, if nothing was captured)."""
        if get_dist_info()[1] == 1 or self._states is None:
            self._states = [get_rng_state()] * get_dist_info()[1]
        checkpoint[CKPT_KEY] = self._states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume, keep this rank's states for :meth:`before_train` (warn if there are none)."""
        if not getattr(runner, '_resume', False):  # load_from: fine-tuning, keep the fresh seed
            return
        states = checkpoint.get(CKPT_KEY)
        rank, world_size = get_dist_info()
        if states is None:
            warnings.warn('RNGStateHook: the checkpoint has no random states (saved without this '
                          'hook); the resumed run re-seeds and will not replay the same random '
                          'draws as an uninterrupted run.')
            return
        if len(states) != world_size:
            warnings.warn(f'RNGStateHook: the checkpoint holds random states of {len(states)} '
                          f'processes but this run has {world_size}; they are not restored, so '
                          'the random draws will differ from the interrupted run.')
            return
        self._to_restore = states[rank]

    def before_train(self, runner) -> None:
        """Restore the states taken from the resumed checkpoint.

        Done here, not on load: the runner re-seeds after loading when the checkpoint's seed
        differs from the config's (e.g. ``randomness.seed=None``).
        """
        if self._to_restore is not None:
            set_rng_state(self._to_restore)
            self._to_restore = None
