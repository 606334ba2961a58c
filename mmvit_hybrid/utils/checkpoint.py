"""Load MMEngine runner checkpoints on torch >= 2.6 without giving up ``weights_only``.

mmengine 0.10.7 loads local checkpoints with ``torch.load(filename, map_location)``. Since torch
2.6 that means ``weights_only=True``, and a checkpoint written by the runner (numpy scalars and
arrays in ``meta`` and ``message_hub``, mmengine's ``HistoryBuffer`` in ``message_hub``) then fails
with ``UnpicklingError`` on ``resume``, ``load_from``, ``tools/test.py``, ``init_detector``, ...

:func:`register_checkpoint_loader` replaces mmengine's local-file loader (the ``''`` scheme, which
every path without a URL prefix goes through) with :func:`load_from_local`: still
``weights_only=True``, with :data:`SAFE_GLOBALS` allowed on top of torch's defaults. A checkpoint
that needs anything else is refused with an error naming it; set ``MMVIT_HYBRID_UNSAFE_LOAD=1`` to
load such a file you trust with ``weights_only=False``, or allow the named globals yourself with
``torch.serialization.add_safe_globals``.

``http(s)://`` checkpoints are left to mmengine: it loads them with torch.hub's
``load_state_dict_from_url``, which passes ``weights_only=False`` itself.
"""
import os
import os.path as osp
import pickle
import warnings

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

UNSAFE_LOAD_ENV = 'MMVIT_HYBRID_UNSAFE_LOAD'


def _history_buffer_getattr(obj, name):
    """Stands in for ``builtins.getattr`` while unpickling.

    ``HistoryBuffer`` pickles its statistics methods, and pickle protocol 2 (``torch.save``'s)
    writes ``HistoryBuffer.min`` as ``getattr(HistoryBuffer, 'min')``. Only those lookups are
    allowed: a general ``getattr`` would let a file reach any attribute of any allowed global.
    """
    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current'):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r})')


def _safe_globals() -> list:
    """numpy's pickle helpers and dtype classes, mmengine's ``HistoryBuffer`` and its methods.

    numpy 1.x pickled its helpers as ``numpy.core.multiarray.*`` and numpy 2.x as
    ``numpy._core.multiarray.*``; both names are allowed so that older model-zoo files load too.
    """
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    helpers = []
    for fn in (multiarray.scalar, multiarray._reconstruct):
        helpers += [(fn, f'numpy.core.multiarray.{fn.__name__}'),
                    (fn, f'numpy._core.multiarray.{fn.__name__}')]
    dtype_classes = sorted({type(np.dtype(c)) for c in np.typecodes['All']}, key=str)
    return [*helpers, np.ndarray, np.dtype, *dtype_classes, HistoryBuffer,
            (_history_buffer_getattr, 'builtins.getattr')]


SAFE_GLOBALS = _safe_globals()


def _unsafe_load_enabled() -> bool:
    return os.getenv(UNSAFE_LOAD_ENV, '0').lower() in ('1', 'true', 'yes', 'y')


def _needed_globals(filename, error) -> str:
    """The globals ``filename`` needs beyond the allowlist, as torch reports them."""
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        except ValueError:  # legacy (non-zip) file; torch's message names the first one
            names = []
    if names:
        return ', '.join(names)
    return str(error).split('WeightsUnpickler error:')[-1].strip().split('\n\n')[0]


def load_from_local(filename, map_location=None):
    """Load a local checkpoint with ``weights_only=True`` and :data:`SAFE_GLOBALS` allowed.

    Raises:
        FileNotFoundError: ``filename`` is not a file.
        pickle.UnpicklingError: the file needs a global outside the allowlist and
            ``MMVIT_HYBRID_UNSAFE_LOAD`` is not set.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        needed = _needed_globals(filename, error)
        if not _unsafe_load_enabled():
            raise pickle.UnpicklingError(
                f'Refusing to load {filename} with weights_only=True: it needs {needed}, which '
                'mmvit_hybrid does not allow by default. If you trust this file, set the '
                f'environment variable {UNSAFE_LOAD_ENV}=1 to load it with weights_only=False, or '
                'allow those globals with torch.serialization.add_safe_globals([...]).') from error
    warnings.warn(f'{UNSAFE_LOAD_ENV} is set: loading {filename} with weights_only=False (it needs '
                  f'{needed}). This can run arbitrary code; do it only for files you trust.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def register_checkpoint_loader() -> None:
    """Make :func:`load_from_local` mmengine's loader for local paths (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
