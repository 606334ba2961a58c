"""Training-time reliability for MMEngine runners: crash-safe checkpoints, exact resume, clear
stops on invalid losses, DDP replica checks, CPU (gloo) DDP for ``tools/train.py``, and mmcv's
box ops in float32 under autocast (:mod:`.mmcv_autocast`, enabled on import)."""
from . import fileio  # noqa: F401  (registers the 'local_atomic' file backend)
from .mmcv_autocast import enable_mmcv_fp32_autocast
from .data_validation import check_annotation_files
from .hooks import (AtomicCheckpointHook, CheckpointMatchHook, InputCheckHook, InvalidLossHook,
                    MissingCheckpointError, PretrainedCheckHook, ReplicaSyncHook, RNGStateHook,
                    check_pretrained_files)
from .optimizers import LayerDecayOptimWrapperConstructor  # registers it in MMEngine's root registry
from .runtime import check_amp_available, enable_reliability_hooks, init_cpu_distributed

__all__ = [
    'AtomicCheckpointHook', 'CheckpointMatchHook', 'InputCheckHook', 'InvalidLossHook',
    'MissingCheckpointError', 'PretrainedCheckHook', 'ReplicaSyncHook', 'RNGStateHook',
    'check_amp_available', 'check_annotation_files', 'check_pretrained_files',
    'enable_mmcv_fp32_autocast', 'enable_reliability_hooks', 'init_cpu_distributed',
    'LayerDecayOptimWrapperConstructor'
]

enable_mmcv_fp32_autocast()  # bfloat16 autocast reaches mmcv's nms/RoIAlign in Mask R-CNN
