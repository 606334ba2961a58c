"""Multi-head self-attention with 2-D relative position logits, the attention of BoTNet
("Bottleneck Transformers for Visual Recognition", Srinivas et al., CVPR 2021, arXiv 2101.11605).

The math follows the official TensorFlow gist
(https://gist.github.com/aravindsrinivas/56359b79f0ce4449bcb04ab4b56a57a2, relative logits from
"Attention Augmented Convolutional Networks", arXiv 1904.09925). For a query at (hq, wq) and a key
at (hk, wk) of one head, with ``d`` the head width:

    logit = s * (q . k + q . rel_h[hk - hq + H - 1] + q . rel_w[wk - wq + W - 1]),  s = d ** -0.5

i.e. q is scaled before both the content and the position term (timm's ``BottleneckAttn`` does
this only with ``scale_pos_embed=True``). ``rel_h`` (2H - 1, d) and ``rel_w`` (2W - 1, d) are learned
tables, shared by the heads, and sized for the feature map the layer was built for.

Written for this package (the layout of the fused qkv projection and of the tables is timm's, so
its weights copy over 1:1; timm: Copyright 2021 Ross Wightman, Apache-2.0).

Three implementations of the same function (``attn_impl``):

* ``'sdpa'`` (default): the relative logits are folded into the dot product, so one fused
  ``scaled_dot_product_attention`` call without any N x N tensor computes them. With
  ``gh = q . rel_h[hk - hq + H - 1]`` over the H key rows (a (N, H) tensor) and ``gw`` over the W
  key columns (N, W), ``q . rel = [gh, gw] . [onehot(hk), onehot(wk)]``; the queries become
  ``[q, gh, gw]`` (width d + H + W) and the keys ``[k, onehot(hk), onehot(wk)]``; q, k and v are
  zero-padded to one width, a multiple of 8, so the fused (flash) kernels apply (they need equal
  widths; zeros change no dot product). Memory is O(N) instead of O(N^2), for about twice the
  attention's matmul work.
* ``'sdpa_bias'``: the (B, heads, N, N) relative logits are materialised and passed to SDPA as an
  additive ``attn_mask``.
* ``'einsum'``: the straightforward reference (explicit logits, softmax, weighted sum).

Any input size: with ``fixed_input_size=False`` (default) a feature map of another size than the
tables' resamples them by linear interpolation along the offset axis (``align_corners=True``: the
zero offset and the largest offsets map onto each other); at the trained size the tables are used
as they are. ``fixed_input_size=True`` is the paper's protocol: other sizes raise an error.
"""
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_


def resize_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    """Resample a (2S - 1, d) relative table to (2S' - 1, d) = (``length``, d).

    Linear interpolation over the offsets with ``align_corners=True`` (offset 0 stays offset 0,
    the extreme offsets stay extreme); the identity when the length does not change.
    """
    if table.shape[0] == length:
        return table
    if length == 1:  # a 1-pixel map only sees the zero offset: the centre row
        centre = table.shape[0] // 2
        return table[centre:centre + 1]
    # (L, d) -> (1, d, L) for 1-D interpolation over the offsets -> (length, d)
    resized = F.interpolate(table.t().unsqueeze(0), size=length, mode='linear', align_corners=True)
    return resized[0].t()


def rel_to_abs_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """(2S - 1, d) table of offsets -> (S, S, d) with ``[iq, ik] = table[ik - iq + S - 1]``."""
    pos = torch.arange(size, device=table.device)
    index = pos[None, :] - pos[:, None] + size - 1  # (S_query, S_key)
    return table[index]


class RelPosAttention(BaseModule):
    """Multi-head self-attention over a (B, C, H, W) map with 2-D relative position logits.

    No output projection (BoTNet's following BN and 1x1 conv play that role); with ``stride=2``
    a 2x2 average pooling follows the attention (``ceil_mode``, so odd maps give ceil(H / 2),
    the size of a stride-2 1x1 conv shortcut).

    Args:
        embed_dims (int): Input and output channels C; each head has C / num_heads.
        num_heads (int): Attention heads. Defaults to 4.
        feat_size (int | Sequence[int]): (H, W) of the feature map the relative tables are sized
            for (the map at the training resolution). Defaults to 14.
        stride (int): 1, or 2 for average pooling after the attention. Defaults to 1.
        qkv_bias (bool): Bias in the fused q/k/v projection (BoTNet has none). Defaults to False.
        fixed_input_size (bool): Raise on any other map size than ``feat_size`` (the paper's fixed
            canvas) instead of resampling the tables. Defaults to False.
        attn_impl (str): ``'sdpa'`` (relative logits folded into SDPA's q/k, O(N) memory),
            ``'sdpa_bias'`` (SDPA with the N x N logits as additive mask) or ``'einsum'``
            (reference). Defaults to ``'sdpa'``.
        init_cfg (dict, optional): Initialisation config. Defaults to None (truncated normal,
            fan-in std for qkv, d^-0.5 for the tables).

    Examples:
        >>> import torch
        >>> from mmvit_hybrid.models.layers import RelPosAttention
        >>> attn = RelPosAttention(64, num_heads=4, feat_size=(8, 10), stride=2)
        >>> tuple(attn(torch.rand(2, 64, 8, 10)).shape)
        (2, 64, 4, 5)
        >>> tuple(attn(torch.rand(2, 64, 7, 13)).shape)  # tables resampled to 7x13
        (2, 64, 4, 7)
    """
    attn_impls = ('sdpa', 'sdpa_bias', 'einsum')

    def __init__(self,
                 embed_dims: int,
                 num_heads: int = 4,
                 feat_size: Union[int, Sequence[int]] = 14,
                 stride: int = 1,
                 qkv_bias: bool = False,
                 fixed_input_size: bool = False,
                 attn_impl: str = 'sdpa',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_heads, int) or num_heads < 1 or embed_dims % num_heads:
            raise ValueError(f'RelPosAttention: embed_dims ({embed_dims}) must be divisible by '
                             f'num_heads ({num_heads})')
        feat_size = (feat_size, feat_size) if isinstance(feat_size, int) else tuple(feat_size)
        if len(feat_size) != 2 or not all(isinstance(s, int) and s > 0 for s in feat_size):
            raise ValueError(f'RelPosAttention: feat_size must be a positive int or (H, W), got {feat_size}')
        if stride not in (1, 2):
            raise ValueError(f'RelPosAttention: stride must be 1 or 2 (2x2 average pooling), got {stride}')
        if attn_impl not in self.attn_impls:
            raise ValueError(f'RelPosAttention: unknown attn_impl {attn_impl!r}; choose one of {self.attn_impls}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = self.head_dims**-0.5
        self.feat_size = feat_size
        self.stride = stride
        self.fixed_input_size = fixed_input_size
        self.attn_impl = attn_impl

        self.qkv = nn.Conv2d(embed_dims, 3 * embed_dims, 1, bias=qkv_bias)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * feat_size[0] - 1, self.head_dims))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * feat_size[1] - 1, self.head_dims))
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self):
        """Truncated normal: std fan_in^-0.5 for qkv (timm), d^-0.5 for the tables (the gist)."""
        trunc_normal_(self.qkv.weight, std=self.qkv.in_channels**-0.5)
        if self.qkv.bias is not None:
            nn.init.zeros_(self.qkv.bias)
        trunc_normal_(self.rel_pos_h, std=self.scale)
        trunc_normal_(self.rel_pos_w, std=self.scale)

    def init_weights(self):
        if self.init_cfg is None:
            self.reset_parameters()
        else:
            super().init_weights()

    def rel_tables(self, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The (2H - 1, d) and (2W - 1, d) tables for an H x W map (resampled if needed)."""
        if (height, width) != self.feat_size and self.fixed_input_size:
            raise ValueError(
                f'RelPosAttention: built for a {self.feat_size[0]}x{self.feat_size[1]} feature map with '
                f'fixed_input_size=True, got {height}x{width}; pad the input to the fixed canvas, or set '
                'fixed_input_size=False to resample the relative-position tables')
        return resize_rel_pos(self.rel_pos_h, 2 * height - 1), resize_rel_pos(self.rel_pos_w, 2 * width - 1)

    def rel_logits(self, q: torch.Tensor, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Unscaled relative logits of q (B, heads, N, d), N = H * W, factored by axis:
        (B, heads, N, H) over key rows and (B, heads, N, W) over key columns."""
        rel_h, rel_w = self.rel_tables(height, width)
        B, heads, N, d = q.shape
        q = q.reshape(B, heads, height, width, d)  # (B, heads, N, d) -> (B, heads, H, W, d)
        # [.., hq, wq, hk] = q[hq, wq] . rel_h[hk - hq + H - 1], likewise for the columns
        logits_h = torch.einsum('bnhwd,hkd->bnhwk', q, rel_to_abs_table(rel_h, height))
        logits_w = torch.einsum('bnhwd,wkd->bnhwk', q, rel_to_abs_table(rel_w, width))
        # (B, heads, H, W, H) -> (B, heads, N, H); (B, heads, H, W, W) -> (B, heads, N, W)
        return logits_h.reshape(B, heads, N, height), logits_w.reshape(B, heads, N, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), or (B, C, ceil(H / 2), ceil(W / 2)) with stride 2."""
        B, C, H, W = x.shape
        N, heads, d = H * W, self.num_heads, self.head_dims
        # (B, 3C, H, W) -> 3 x (B, heads, d, N) -> (B, heads, N, d); channel order q|k|v, then heads
        q, k, v = self.qkv(x).reshape(B, 3, heads, d, N).transpose(-1, -2).unbind(1)
        logits_h, logits_w = self.rel_logits(q, H, W)
        if self.attn_impl == 'sdpa':
            rows = torch.arange(N, device=x.device)
            onehot_h = F.one_hot(rows // W, H).to(q.dtype)  # (N, H): the row of each key
            onehot_w = F.one_hot(rows % W, W).to(q.dtype)  # (N, W): the column of each key
            q = torch.cat([q, logits_h, logits_w], dim=-1)  # (B, heads, N, d + H + W)
            k = torch.cat([k, onehot_h.expand(B, heads, N, H), onehot_w.expand(B, heads, N, W)], dim=-1)
            # fused (flash) kernels need one head width for q, k and v, a multiple of 8: zero-pad
            # (zeros add nothing to q.k; the padded output columns are dropped)
            width = -(-q.shape[-1] // 8) * 8
            q, k, v = (F.pad(t, (0, width - t.shape[-1])) for t in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)[..., :d]
        else:
            # (B, heads, N, H, 1) + (B, heads, N, 1, W) -> (B, heads, N, H * W = N)
            rel = (logits_h.unsqueeze(-1) + logits_w.unsqueeze(-2)).reshape(B, heads, N, N)
            if self.attn_impl == 'sdpa_bias':
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=rel * self.scale, scale=self.scale)
            else:
                attn = ((torch.einsum('bnid,bnjd->bnij', q, k) + rel) * self.scale).softmax(dim=-1)
                out = torch.einsum('bnij,bnjd->bnid', attn, v)
        out = out.transpose(-1, -2).reshape(B, C, H, W)  # (B, heads, N, d) -> (B, heads, d, N) -> (B, C, H, W)
        return self.pool(out)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, feat_size={self.feat_size}, '
                f'stride={self.stride}, fixed_input_size={self.fixed_input_size}, attn_impl={self.attn_impl!r}')
