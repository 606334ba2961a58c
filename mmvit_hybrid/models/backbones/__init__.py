from .dmformer import DMFormer
from .dsnet import DSNet

__all__ = ['DMFormer', 'DSNet']
