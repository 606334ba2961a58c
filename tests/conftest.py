import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_report_header(config):
    return f'torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}'
