from .botnet import BoTNet
from .dmformer import DMFormer
from .dsnet import DSNet

__all__ = ['BoTNet', 'DMFormer', 'DSNet']
