"""The installed OpenMMLab configs (``<package>/.mim/configs``) that this package's configs cite."""
import importlib
from pathlib import Path

from mmengine.config import Config


def mim_config(package: str, rel: str) -> Config:
    """An installed mmdet/mmseg/mmpretrain config, e.g. ``mim_config('mmdet', 'swin/...py')``."""
    module = importlib.import_module(package)
    return Config.fromfile(str(Path(module.__file__).parent / '.mim' / 'configs' / rel))
