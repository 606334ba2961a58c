"""Hooks registered in MMEngine's root ``HOOKS`` registry (usable from mmdet/mmseg/mmpretrain)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .checkpoint_match_hook import CheckpointMatchHook
from .input_check_hook import InputCheckHook
from .invalid_loss_hook import InvalidLossHook
from .pretrained_check_hook import (MissingCheckpointError, PretrainedCheckHook, check_pretrained_files,
                                    pretrained_source)
from .replica_sync_hook import ReplicaSyncHook
from .rng_state_hook import RNGStateHook

__all__ = [
    'AtomicCheckpointHook', 'CheckpointMatchHook', 'InputCheckHook', 'InvalidLossHook',
    'MissingCheckpointError', 'PretrainedCheckHook', 'ReplicaSyncHook', 'RNGStateHook',
    'check_pretrained_files', 'pretrained_source'
]
