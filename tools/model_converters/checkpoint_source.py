"""What the converters in this folder share: a SRC that is a URL, atomic outputs, one-line errors.

* :func:`local_source`: SRC is a path, or an ``http(s)://`` URL (the published PaddleClas, sail-sg,
  Hugging Face and torchvision files). A URL is downloaded with a progress bar into a temporary
  folder inside the cache folder (default ``torch.hub.get_dir()/checkpoints``, so ``TORCH_HOME``
  moves it), the converter reads it there, and only a file that converted is moved to its cache
  name ``<8 hex of sha256(url)>-<file name>`` (a hub's ``model.safetensors`` names every model the
  same). A later run with the same URL reads the cached file. A download that stops before the
  ``Content-Length`` the server announced, an HTML page, or a file the converter rejects leaves
  nothing in the cache.
* :func:`save_outputs`: ``torch.save`` each output to a temporary file beside it, then
  ``os.replace`` them all: an error leaves no output file, complete or not.
* :func:`run_cli`: a converter's ``main`` whose expected failures (bad download, wrong file, other
  architecture) end the tool with one line on stderr and exit status 1, not a traceback.

Why not ``torch.hub.download_url_to_file`` (which has the progress bar and the temp-then-move):
it reads until the first empty chunk and keeps what it got. Python's ``http.client`` returns an
empty chunk, not ``IncompleteRead``, when the server closes the connection before
``Content-Length`` bytes (``HTTPResponse.read(amt)``), so a truncated download is kept as if it
were complete. :func:`download` is the same loop (urllib, torch.hub's ``tqdm``) with that count
checked.
"""
import argparse
import contextlib
import hashlib
import http.client
import os
import pickle
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Tuple
from urllib.parse import unquote, urlparse
from urllib.request import Request, urlopen

import torch
from torch.hub import tqdm  # tqdm when installed, else torch's stand-in

URL_PREFIXES = ('http://', 'https://')
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60  # per blocking socket operation, not for the whole download


class DownloadError(RuntimeError):
    """A URL that did not give a complete checkpoint file."""


def is_url(src: str) -> bool:
    """Whether ``src`` is an ``http(s)://`` URL."""
    return str(src).startswith(URL_PREFIXES)


def default_cache_dir() -> str:
    """``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``)."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints')


def cache_path(url: str, cache_dir: Optional[str] = None) -> Path:
    """Where the download of ``url`` is kept: ``<cache_dir>/<8 hex of sha256(url)>-<file name>``.

    Args:
        url (str): The URL.
        cache_dir (str, optional): The cache folder. Defaults to :func:`default_cache_dir`.
    """
    name = Path(unquote(urlparse(url).path)).name or 'download'
    return Path(cache_dir or default_cache_dir()) / f'{hashlib.sha256(url.encode()).hexdigest()[:8]}-{name}'


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:15].lower().startswith((b'<!doctype html', b'<html', b'<head', b'<body'))


def _fetch(url: str, dst: str, progress: bool) -> Tuple[int, Optional[int], bool]:
    """Write the body of ``url`` to ``dst``; return ``(bytes written, Content-Length or None, is HTML)``."""
    size = 0
    try:
        with urlopen(Request(url, headers={'User-Agent': 'mmvit_hybrid'}), timeout=TIMEOUT_S) as response:
            length = response.headers.get('Content-Length')
            expected = int(length) if length and length.isdigit() else None
            html = response.headers.get_content_type() == 'text/html'
            with open(dst, 'wb') as f, tqdm(total=expected, disable=not progress, unit='B', unit_scale=True,
                                            unit_divisor=1024) as bar:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    if size == 0:
                        html = html or _looks_like_html(chunk[:64])
                    f.write(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as err:  # URLError/HTTPError are OSErrors
        raise DownloadError(f'cannot download {url}: {err}') from err
    return size, expected, html


def download(url: str, dst: str, progress: bool = True) -> int:
    """Download ``url`` to ``dst`` (overwritten) with a progress bar; return the byte count.

    Args:
        url (str): ``http(s)://`` URL.
        dst (str): Local file to write.
        progress (bool): Show a progress bar on stderr. Defaults to True.

    Raises:
        DownloadError: the request failed, the body is shorter (or longer) than its
            ``Content-Length``, or the server sent an HTML page.
    """
    try:
        size, expected, html = _fetch(url, dst, progress)
        if expected is not None and size != expected:
            raise DownloadError(f'the download of {url} stopped at {size} of the {expected} bytes the server '
                                'announced (connection closed early); nothing was kept, run the command again')
        if html:
            raise DownloadError(f'{url} sent an HTML page, not a checkpoint file (an error, login or download '
                                'page?); use the link of the file itself')
    except BaseException:
        if os.path.exists(dst):
            os.remove(dst)
        raise
    return size


@contextlib.contextmanager
def local_source(src: str, cache_dir: Optional[str] = None, progress: bool = True) -> Iterator[str]:
    """Yield a local file for ``src``: ``src`` itself, or the download of a URL.

    A URL already in the cache is not downloaded again. Otherwise the download goes to a temporary
    folder in the cache folder (under the URL's file name: the converters read the suffix), the
    ``with`` body reads it there, and only when the body ends without an error is the file moved
    to :func:`cache_path`. Any error removes the temporary folder.

    Args:
        src (str): A local path or an ``http(s)://`` URL.
        cache_dir (str, optional): The cache folder. Defaults to :func:`default_cache_dir`.
        progress (bool): Show the download's progress bar. Defaults to True.

    Raises:
        FileNotFoundError: ``src`` is a path that is not a file.
        DownloadError: see :func:`download`.
    """
    if not is_url(src):
        if not os.path.isfile(src):
            raise FileNotFoundError(f'{src} is not a file (give a path or an http(s):// URL)')
        yield src
        return
    final = cache_path(src, cache_dir)
    if final.is_file():
        print(f'using the cached download of {src}: {final}')
        yield str(final)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix='.download-', dir=final.parent)
    try:
        path = os.path.join(tmp_dir, final.name)
        print(f'downloading {src}', file=sys.stderr)
        size = download(src, path, progress)
        yield path
        os.replace(path, final)
        print(f'kept the download ({size} bytes) in {final}')
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--cache-dir`` and ``--no-progress`` (for a URL ``src``) to a converter's parser."""
    parser.add_argument('--cache-dir', help='where a URL SRC is downloaded to (default: '
                        '$TORCH_HOME/hub/checkpoints, i.e. torch.hub.get_dir()/checkpoints)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar for a URL SRC')


def save_outputs(outputs: Sequence[Tuple[str, object]]) -> None:
    """``torch.save`` each ``(path, obj)``, all or none: every object goes to a temporary file
    beside its path first, and the files replace their paths only when all are written.

    Args:
        outputs (Sequence[tuple]): ``(path, object)`` pairs; parent folders are created.
    """
    tmps = []
    try:
        for path, obj in outputs:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmps.append(os.path.join(os.path.dirname(os.path.abspath(path)),
                                     f'.{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp'))
            torch.save(obj, tmps[-1])
        for tmp, (path, _) in zip(tmps, outputs):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)


# what a converter raises for a bad SRC (download, file, layout, architecture), as opposed to a bug
EXPECTED_ERRORS = (DownloadError, ValueError, KeyError, OSError, pickle.UnpicklingError, RuntimeError)


def run_cli(main: Callable[[], None], tool: str) -> None:
    """Run ``main``; an expected error ends the program with one line ``TOOL: error: ...``
    (exit status 1).

    Args:
        main (callable): The converter's command line.
        tool (str): The tool's name, e.g. ``'volo_to_mmvit'``.
    """
    try:
        main()
    except EXPECTED_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        message = ' '.join(str(message).split())  # one line
        prefix = f'{tool}: '
        raise SystemExit(f'{tool}: error: {message[len(prefix):] if message.startswith(prefix) else message}') \
            from err
