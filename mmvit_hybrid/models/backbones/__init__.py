from .botnet import BoTNet
from .dmformer import DMFormer
from .dsnet import DSNet
from .volo import VOLO

__all__ = ['BoTNet', 'DMFormer', 'DSNet', 'VOLO']
