"""Optimizer-wrapper constructors, registered in MMEngine's root ``OPTIM_WRAPPER_CONSTRUCTORS``
(so mmdet, mmseg and mmpretrain configs find them by type name)."""
from .layer_decay_optim_wrapper_constructor import LayerDecayOptimWrapperConstructor

__all__ = ['LayerDecayOptimWrapperConstructor']
