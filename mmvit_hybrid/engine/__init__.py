"""Training-time reliability for MMEngine runners: crash-safe checkpoints, exact resume, clear
stops on invalid losses, DDP replica checks, and CPU (gloo) DDP for ``tools/train.py``."""
from . import fileio  # noqa: F401  (registers the 'local_atomic' file backend)
from .data_validation import check_annotation_files
from .hooks import (AtomicCheckpointHook, CheckpointMatchHook, InputCheckHook, InvalidLossHook,
                    ReplicaSyncHook, RNGStateHook)
from .runtime import check_amp_available, enable_reliability_hooks, init_cpu_distributed

__all__ = [
    'AtomicCheckpointHook', 'CheckpointMatchHook', 'InputCheckHook', 'InvalidLossHook',
    'ReplicaSyncHook', 'RNGStateHook', 'check_amp_available', 'check_annotation_files',
    'enable_reliability_hooks', 'init_cpu_distributed'
]
