import functools
import os

import pytest
import torch


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs ``-n 2``) the workers share the machine's cores: one
    thread each, also for the tools and benchmarks they start (the environment is inherited)."""
    if os.environ.get('PYTEST_XDIST_WORKER'):
        os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _default_scope_kept():
    """Yield, then put back mmengine's default scopes as they were (nothing to do without mmengine:
    the op's tests run with torch alone)."""
    try:
        from mmengine.registry import DefaultScope
    except ImportError:
        yield
        return
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


# A test or a module fixture that calls ``init_default_scope('mmdet')`` (or starts a Runner or an
# Inferencer) must not leave mmdet as the scope of what runs next in the same xdist worker:
# mmengine's ``Registry.build`` follows the current default scope, so an mmpretrain model would be
# looked up in mmdet's registry. Autouse fixtures start before the other fixtures of their scope.
@pytest.fixture(scope='module', autouse=True)
def _restore_default_scope_per_module():
    yield from _default_scope_kept()


@pytest.fixture(autouse=True)
def _restore_default_scope_per_test():
    yield from _default_scope_kept()


def pytest_report_header(config):
    return f'torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}'


@pytest.fixture(scope='module')
def one_thread():
    """Small CPU workloads run fastest on one thread and do not stall (OpenMP spin-waits) when other
    jobs share the cores. Test modules opt in with ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def checkpoint_calls(monkeypatch):
    """Spy on ``torch.utils.checkpoint.checkpoint``: the list gets each call's ``use_reentrant``."""
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def spy(*args, **kwargs):
        calls.append(kwargs.get('use_reentrant'))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint', spy)
    return calls


@pytest.fixture(scope='module')
def cached_config_metafiles():
    """mmengine 0.10.7 resolves every ``mmdet::``/``mmseg::`` base config by first parsing all of
    that package's metafile YAMLs (about 0.5 s per base, ``mmengine.config.utils._get_cfg_metainfo``)
    and only then falling back to the base path. Test modules that load many configs opt in to
    parsing each metafile once (the files do not change; the parsed dicts are only read)."""
    import mmengine.config.utils as config_utils
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config_utils, 'load', functools.lru_cache(maxsize=None)(config_utils.load))
        yield
