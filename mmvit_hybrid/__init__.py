"""mmvit_hybrid: hybrid CNN/transformer backbones for mmdet, mmseg and mmpretrain.

Importing the package (e.g. through ``custom_imports=dict(imports=['mmvit_hybrid'])``) registers
every backbone and neck into MMEngine's root model registry, and makes runner checkpoints load on
torch >= 2.6 (see :mod:`mmvit_hybrid.utils.checkpoint`).
"""
from .utils import register_checkpoint_loader
from .version import __version__

register_checkpoint_loader()

from . import models  # noqa: E402,F401  (registers the modules)
from . import engine  # noqa: F401,E402

__all__ = ['__version__']
