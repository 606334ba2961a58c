from .dual_stream import DualStreamBlock

__all__ = ['DualStreamBlock']
