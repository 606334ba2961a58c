from .dma import DMA
from .dual_stream import DualStreamBlock

__all__ = ['DMA', 'DualStreamBlock']
