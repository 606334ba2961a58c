from .class_attention import ClassAttention, ClassAttentionBlock
from .dma import DMA
from .dma_ablation import DMAAblation
from .dual_stream import DualStreamBlock
from .mhsa_block import GlobalSelfAttention, MHSABlock
from .outlooker import OutlookAttention, Outlooker
from .prenorm_block import PreNormBlock
from .rel_pos_attention import RelPosAttention

__all__ = [
    'ClassAttention', 'ClassAttentionBlock', 'DMA', 'DMAAblation', 'DualStreamBlock', 'GlobalSelfAttention',
    'MHSABlock', 'OutlookAttention', 'Outlooker', 'PreNormBlock', 'RelPosAttention'
]
