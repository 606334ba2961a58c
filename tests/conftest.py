import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


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
