"""Class attention (CaiT, Touvron et al., arXiv 2103.17239) as used by VOLO's post network
(arXiv 2106.13112; official ``sail-sg/volo`` ``ClassBlock``, timm ``volo.py``): only the class
token is updated, attending to itself and every patch token. Parameter names (``attn.q``,
``attn.kv``, ``attn.proj``) follow the reference for checkpoint conversion."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from .prenorm_block import PreNormBlock


class ClassAttention(BaseModule):
    """Attention of the class token (query) over all tokens (keys/values).

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads; must divide ``embed_dims``.
        qkv_bias (bool): Bias of the q and kv projections. Defaults to False.
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
            raise ValueError(f'ClassAttention: num_heads={num_heads} must divide embed_dims={embed_dims}')
        self.num_heads = num_heads
        self.attn_drop_rate = attn_drop_rate
        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.kv = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1 + N, C) tokens, class token first -> the class token's update (B, 1, C)."""
        B, N, C = x.shape
        d = C // self.num_heads
        # (B, N, 2C) -> (B, N, 2, heads, d) -> (2, B, heads, N, d)
        k, v = self.kv(x).reshape(B, N, 2, self.num_heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        q = self.q(x[:, :1]).reshape(B, 1, self.num_heads, d).transpose(1, 2)  # (B, heads, 1, d)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop_rate if self.training else 0.)
        out = out.transpose(1, 2).reshape(B, 1, C)  # (B, heads, 1, d) -> (B, 1, C)
        return self.proj_drop(self.proj(out))


class ClassAttentionBlock(PreNormBlock):
    """Pre-norm class-attention block: ``cls += CA(LN(tokens))``, ``cls += MLP(LN(cls))``; the
    patch tokens pass through unchanged.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width over C. Defaults to 4.
        qkv_bias (bool): Bias of the q and kv projections. Defaults to False.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        **kwargs (dict): ``drop_path_rate`` (VOLO's is 0), ``act_cfg``, ``norm_cfg``, ``with_cp``,
            ``init_cfg`` of :class:`PreNormBlock`.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 4., qkv_bias: bool = False,
                 attn_drop_rate: float = 0., **kwargs):
        attn = ClassAttention(embed_dims, num_heads, qkv_bias=qkv_bias, attn_drop_rate=attn_drop_rate)
        super().__init__(embed_dims, attn, mlp_ratio=mlp_ratio, **kwargs)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        cls_token = x[:, :1] + self.drop_path(self.attn(self.norm1(x)))  # (B, 1, C)
        cls_token = self.ffn(self.norm2(cls_token), identity=cls_token)
        return torch.cat([cls_token, x[:, 1:]], dim=1)  # (B, 1 + N, C)
