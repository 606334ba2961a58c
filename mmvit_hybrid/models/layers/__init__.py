from .dma import DMA
from .dual_stream import DualStreamBlock
from .rel_pos_attention import RelPosAttention

__all__ = ['DMA', 'DualStreamBlock', 'RelPosAttention']
