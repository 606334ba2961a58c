"""A pre-norm transformer block with global multi-head self-attention on a channels-last map: the
stride-16 stages of VOLO (arXiv 2106.13112; official ``sail-sg/volo``, timm ``volo.py``
``Transformer``), parameter names kept (``attn.qkv``, ``attn.proj``) for checkpoint conversion."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from .prenorm_block import PreNormBlock


class GlobalSelfAttention(BaseModule):
    """Multi-head self-attention over all H*W tokens of a (B, H, W, C) map, computed with
    ``F.scaled_dot_product_attention`` (flash/memory-efficient kernels where available).

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads; must divide ``embed_dims``.
        qkv_bias (bool): Bias of the qkv projection. Defaults to False.
        attn_drop_rate (float): Attention dropout (training only). Defaults to 0.
        proj_drop_rate (float): Dropout after the output projection. Defaults to 0.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = False,
                 attn_drop_rate: float = 0.,
                 proj_drop_rate: float = 0.,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_heads < 1 or embed_dims % num_heads:
            raise ValueError(f'GlobalSelfAttention: num_heads={num_heads} must divide embed_dims={embed_dims}')
        self.num_heads = num_heads
        self.attn_drop_rate = attn_drop_rate
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        B, H, W, C = x.shape
        # (B, H, W, 3C) -> (B, N, 3, heads, d) -> (3, B, heads, N, d)
        qkv = self.qkv(x).reshape(B, H * W, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop_rate if self.training else 0.)
        out = out.transpose(1, 2).reshape(B, H, W, C)  # (B, heads, N, d) -> (B, H, W, C)
        return self.proj_drop(self.proj(out))


class MHSABlock(PreNormBlock):
    """Pre-norm transformer block: ``x + MHSA(LN(x))`` then ``x + MLP(LN(x))``, channels-last.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width over C. Defaults to 4.
        qkv_bias (bool): Bias of the qkv projection. Defaults to False.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        **kwargs (dict): ``drop_path_rate``, ``act_cfg``, ``norm_cfg``, ``with_cp``, ``init_cfg``
            of :class:`PreNormBlock`.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 4., qkv_bias: bool = False,
                 attn_drop_rate: float = 0., **kwargs):
        attn = GlobalSelfAttention(embed_dims, num_heads, qkv_bias=qkv_bias, attn_drop_rate=attn_drop_rate)
        super().__init__(embed_dims, attn, mlp_ratio=mlp_ratio, **kwargs)
