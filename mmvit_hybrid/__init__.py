"""mmvit_hybrid: hybrid CNN/transformer backbones for mmdet, mmseg and mmpretrain.

Importing the package (e.g. through ``custom_imports=dict(imports=['mmvit_hybrid'])``) registers
every backbone and neck into MMEngine's root model registry, and makes runner checkpoints load on
torch >= 2.6 (see :mod:`mmvit_hybrid.utils.checkpoint`).

Where MMEngine is not installed at all (a machine with only torch and a compiler, to build and
test the custom ops), the package imports without the OpenMMLab parts, so that
``mmvit_hybrid.ops`` works with torch alone; ``OPENMMLAB_AVAILABLE`` tells which case applies.
With MMEngine installed, every import error of the models propagates.
"""
import importlib.util

from .version import __version__



def _mmengine_installed() -> bool:
    try:
        return importlib.util.find_spec('mmengine') is not None
    except (ImportError, ValueError):  # a finder refused it, or a broken half-import
        return False


OPENMMLAB_AVAILABLE = _mmengine_installed()

if OPENMMLAB_AVAILABLE:
    from .utils import register_checkpoint_loader

    register_checkpoint_loader()

    from . import models  # noqa: E402,F401  (registers the modules)
    from . import engine  # noqa: F401,E402

__all__ = ['__version__', 'OPENMMLAB_AVAILABLE']
