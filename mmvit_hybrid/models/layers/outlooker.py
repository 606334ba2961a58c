"""Outlook attention and the Outlooker block of VOLO (Yuan et al., "VOLO: Vision Outlooker for
Visual Recognition", arXiv 2106.13112).

Written for this package after the official ``sail-sg/volo`` ``models/volo.py`` (Copyright 2021
Sea Limited, Apache-2.0) and its timm port ``timm/models/volo.py`` (Ross Wightman); parameter
names follow them so that their checkpoints convert key by key
(``tools/model_converters/volo_to_mmvit.py``). The ``fold(attn @ unfold(v))`` core runs in
:func:`mmvit_hybrid.ops.outlook_attention` (fused kernels, unfold/fold reference as fallback).
"""
import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmvit_hybrid.ops import outlook_attention
from .ceil_pool import ceil_pool2d
from .prenorm_block import PreNormBlock


class OutlookAttention(BaseModule):
    """Outlook attention on a channels-last (B, H, W, C) map.

    Per window of ``kernel_size`` x ``kernel_size`` pixels (``stride`` apart, ``padding`` zero
    padding), a linear layer on the average-pooled centre token produces a K*K x K*K attention
    matrix per head (no query-key product); it mixes the window's projected values, and ``fold``
    sums the overlapping windows back onto the pixels (so every pixel gathers a
    (2K - 1) x (2K - 1) neighbourhood).

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads; must divide ``embed_dims``.
        kernel_size (int): Window size K. Defaults to 3.
        padding (int): Window padding. Defaults to 1.
        stride (int): Window stride, also the pooling size of the attention input. Defaults to 2.
        qkv_bias (bool): Bias of the value projection. Defaults to False.
        attn_drop_rate (float): Dropout on the attention weights. Defaults to 0.
        proj_drop_rate (float): Dropout after the output projection. Defaults to 0.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 kernel_size: int = 3,
                 padding: int = 1,
                 stride: int = 2,
                 qkv_bias: bool = False,
                 attn_drop_rate: float = 0.,
                 proj_drop_rate: float = 0.,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_heads < 1 or embed_dims % num_heads:
            raise ValueError(f'OutlookAttention: num_heads={num_heads} must divide embed_dims={embed_dims}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.kernel_size = kernel_size
        self.padding = padding
        self.stride = stride
        self.scale = (embed_dims // num_heads)**-0.5

        self.v = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.attn = nn.Linear(embed_dims, kernel_size**4 * num_heads)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        B, H, W, C = x.shape
        K2 = self.kernel_size**2
        value = self.v(x).permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        pooled = ceil_pool2d(x.permute(0, 3, 1, 2), self.stride).permute(0, 2, 3, 1)  # (B, Ho, Wo, C)
        Ho, Wo = pooled.shape[1:3]  # ceil(H / stride), ceil(W / stride)
        attn = self.attn(pooled).reshape(B, Ho, Wo, self.num_heads, K2, K2)  # rows: written, cols: read
        attn = attn.permute(0, 3, 1, 2, 4, 5)  # (B, heads, Ho, Wo, K*K, K*K)
        attn = self.attn_drop((attn * self.scale).softmax(dim=-1))
        out = outlook_attention(value, attn, self.kernel_size, self.padding, self.stride)  # (B, C, H, W)
        return self.proj_drop(self.proj(out.permute(0, 2, 3, 1)))  # (B, H, W, C)


class Outlooker(PreNormBlock):
    """Outlooker block (pre-norm): ``x + OA(LN(x))`` then ``x + MLP(LN(x))``, channels-last.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads of the outlook attention.
        mlp_ratio (float): MLP hidden width over C. Defaults to 3.
        kernel_size (int): Outlook window size. Defaults to 3.
        padding (int): Outlook window padding. Defaults to 1.
        stride (int): Outlook window stride. Defaults to 2.
        qkv_bias (bool): Bias of the value projection. Defaults to False.
        attn_drop_rate (float): Attention-weight dropout. Defaults to 0.
        **kwargs (dict): ``drop_path_rate`` (VOLO uses 0 for every outlooker), ``act_cfg``,
            ``norm_cfg``, ``with_cp``, ``init_cfg`` of :class:`PreNormBlock`.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 3., kernel_size: int = 3,
                 padding: int = 1, stride: int = 2, qkv_bias: bool = False, attn_drop_rate: float = 0., **kwargs):
        attn = OutlookAttention(embed_dims, num_heads, kernel_size=kernel_size, padding=padding, stride=stride,
                                qkv_bias=qkv_bias, attn_drop_rate=attn_drop_rate)
        super().__init__(embed_dims, attn, mlp_ratio=mlp_ratio, **kwargs)
