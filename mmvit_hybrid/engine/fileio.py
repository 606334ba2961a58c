"""Atomic local writes for checkpoints: a killed job never leaves a truncated file under the final name.

:class:`AtomicLocalBackend` is mmengine's ``LocalBackend`` with ``put``/``put_text`` writing to a
temporary file in the same folder, flushing it to disk and then renaming it over the target with
``os.replace`` (atomic on POSIX and Windows). It is registered as the mmengine file backend
``'local_atomic'``; :class:`~mmvit_hybrid.engine.hooks.AtomicCheckpointHook` uses it for local
work dirs.
"""
import os
import os.path as osp
import uuid
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

__all__ = ['AtomicLocalBackend', 'atomic_write']


def _write_file(path: str, data: Union[bytes, str], encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` and flush it to disk (``fsync``)."""
    mode = 'wb' if isinstance(data, bytes) else 'w'
    kwargs = {} if isinstance(data, bytes) else dict(encoding=encoding)
    with open(path, mode, **kwargs) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(data: Union[bytes, str], filepath: str, encoding: str = 'utf-8') -> None:
    """Write ``data`` (bytes or text) to ``filepath`` atomically.

    The data go to a temporary file beside ``filepath`` first, which then replaces ``filepath`` in
    one ``os.replace``. Readers see either the old file or the complete new one; a process killed
    midway leaves at most a ``.tmp`` file behind, never a truncated ``filepath``.

    Args:
        data (bytes | str): the content.
        filepath (str): the target path; its folder is created if missing.
        encoding (str): text encoding when ``data`` is a str. Defaults to 'utf-8'.
    """
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    # a plain open (not mkstemp) so that the file gets the usual permissions (umask), not 0600
    tmp = osp.join(folder, f'.{osp.basename(filepath)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        _write_file(tmp, data, encoding)
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable (not possible on every OS / file system)
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@register_backend('local_atomic')
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose writes are atomic (see :func:`atomic_write`)."""

    def put(self, obj: bytes, filepath) -> None:
        """Write bytes to ``filepath`` atomically."""
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically."""
        atomic_write(obj, filepath, encoding=encoding)
