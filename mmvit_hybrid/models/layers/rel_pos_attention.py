"""Multi-head self-attention with 2-D relative position logits, the attention of BoTNet
("Bottleneck Transformers for Visual Recognition", Srinivas et al., CVPR 2021, arXiv 2101.11605).

The math follows the official TensorFlow gist
(https://gist.github.com/aravindsrinivas/56359b79f0ce4449bcb04ab4b56a57a2, relative logits from
"Attention Augmented Convolutional Networks", arXiv 1904.09925). For a query at (hq, wq) and a key
at (hk, wk) of one head, with ``d`` the head width and ``s = d ** -0.5``:

    logit = (s q) . k + (s q) . rel_h[hk - hq + H - 1] + (s q) . rel_w[wk - wq + W - 1]

i.e. q is scaled before both the content and the position term (timm's ``BottleneckAttn`` with
``scale_pos_embed=True``). ``rel_h`` (2H - 1, d) and ``rel_w`` (2W - 1, d) are learned tables,
shared by the heads, sized for the feature map the layer was built for. The layout of the fused
qkv projection and of the tables is timm's (Copyright 2021 Ross Wightman, Apache-2.0), so its
weights copy over 1:1; the code is written for this package.

Two implementations of the same function (``attn_impl``):

* ``'matmul'``: the equation as written: the (B, heads, N, N) logits ``q k^T`` plus the relative
  logits, softmax, ``attn @ v``.
* ``'sdpa'``: the relative logits folded into one fused ``scaled_dot_product_attention`` call, so
  no N x N tensor exists (O(N) memory, for large maps): ``q . rel_h[hk - hq + H - 1]`` depends on
  the key only through its row hk, so with ``gh`` (N, H) the row logits of each query and ``gw``
  (N, W) the column logits, ``q . rel = [gh, gw] . [onehot(hk), onehot(wk)]``. The queries become
  ``[q, gh, gw]``, the keys ``[k, onehot(hk), onehot(wk)]``; q, k and v are zero-padded to one
  width, a multiple of 8, which the fused (flash) kernels need (zeros change no dot product).

``'auto'`` (default) runs ``'matmul'`` while the logits hold at most :attr:`auto_max_logits`
elements (2^24, 64 MiB of float32: e.g. four 32 x 32 maps) and ``'sdpa'`` above (the 64 x 64 maps
of the 1024 x 1024 detection canvas), and ``'matmul'`` in an ONNX export (one graph for every
size); ``benchmarks/botnet_attention.py`` measures both.

Any input size: with ``fixed_input_size=False`` (default) the tables are resampled to the map's
size by linear interpolation along the offset axis (``align_corners=True``: offset 0 and the
extreme offsets stay in place; the identity at the built size). ``fixed_input_size=True`` is the
paper's protocol: other sizes raise an error.
"""
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from .ceil_pool import ceil_pool2d


def resize_rel_pos(table: torch.Tensor, size: int) -> torch.Tensor:
    """Resample a (2S - 1, d) table of offsets -S+1..S-1 to (2 * size - 1, d).

    Offset o of the new table reads offset ``o * (S - 1) / (size - 1)`` of the old one, linearly
    interpolated (``F.interpolate(mode='linear', align_corners=True)`` over the offsets, and the
    centre row for ``size=1``); the identity when ``size == S``. One formula for every size, no
    branch on it, so that an exported graph resamples for the sizes it meets at run time.
    """
    last = table.shape[0] - 1  # 2S - 2
    offsets = torch.arange(2 * size - 1, device=table.device, dtype=torch.float32) - (size - 1)
    # offset o -> fractional row S - 1 + o (S - 1) / (size - 1) of the old table; the divisor is a
    # tensor (size - 1, at least 1), not a Python branch on the size
    pos = offsets * (last // 2) / offsets.abs().max().clamp(min=1) + last // 2
    low = pos.floor().clamp(0, last)
    frac = (pos - low).unsqueeze(-1).to(table.dtype)  # (2 * size - 1, 1)
    low = low.long()
    high = (low + 1).clamp(max=last)
    return table[low] * (1 - frac) + table[high] * frac


def rel_to_abs_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """(2S - 1, d) table of offsets -> (S, S, d) with ``[iq, ik] = table[ik - iq + S - 1]``."""
    pos = torch.arange(size, device=table.device)
    index = pos[None, :] - pos[:, None] + size - 1  # (S_query, S_key)
    return table[index]


class RelPosAttention(BaseModule):
    """Multi-head self-attention over a (B, C, H, W) map with 2-D relative position logits.

    No output projection (BoTNet's following BN and 1x1 conv play that role); with ``stride=2``
    a 2x2 average pooling follows the attention (odd maps give ceil(H / 2), see
    :func:`~.ceil_pool.ceil_pool2d`).

    Args:
        embed_dims (int): Input and output channels C; each head has C / num_heads.
        num_heads (int): Attention heads. Defaults to 4.
        feat_size (int | Sequence[int]): (H, W) of the feature map the relative tables are sized
            for (the map at the training resolution). Defaults to 14.
        stride (int): 1, or 2 for average pooling after the attention. Defaults to 1.
        qkv_bias (bool): Bias in the fused q/k/v projection (BoTNet has none). Defaults to False.
        fixed_input_size (bool): Raise on any other map size than ``feat_size`` (the paper's fixed
            canvas) instead of resampling the tables. Defaults to False.
        attn_impl (str): ``'matmul'`` (explicit logits), ``'sdpa'`` (fused, O(N) memory) or
            ``'auto'`` (``'matmul'`` up to :attr:`auto_max_logits` logits, else ``'sdpa'``); see
            the module docstring. Defaults to ``'auto'``.
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
    attn_impls = ('auto', 'matmul', 'sdpa')
    #: ``'auto'`` takes ``'matmul'`` while B * heads * N * N is at most this (64 MiB of float32)
    auto_max_logits = 2**24

    def __init__(self,
                 embed_dims: int,
                 num_heads: int = 4,
                 feat_size: Union[int, Sequence[int]] = 14,
                 stride: int = 1,
                 qkv_bias: bool = False,
                 fixed_input_size: bool = False,
                 attn_impl: str = 'auto',
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

    def rel_logits(self, q: torch.Tensor, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Relative logits of q (B, heads, N, d), N = H * W, factored by axis: (B, heads, N, H)
        ``q[hq, wq] . rel_h[hk - hq + H - 1]`` over the key rows hk and (B, heads, N, W) over
        the key columns wk."""
        if (height, width) != self.feat_size and self.fixed_input_size:
            raise ValueError(
                f'RelPosAttention: built for a {self.feat_size[0]}x{self.feat_size[1]} feature map with '
                f'fixed_input_size=True, got {height}x{width}; pad the input to the fixed canvas, or set '
                'fixed_input_size=False to resample the relative-position tables')
        rel_h = rel_to_abs_table(resize_rel_pos(self.rel_pos_h, height), height)  # (Hq, Hk, d)
        rel_w = rel_to_abs_table(resize_rel_pos(self.rel_pos_w, width), width)  # (Wq, Wk, d)
        B, heads, N, d = q.shape
        q = q.reshape(B, heads, height, width, d)  # (B, heads, N, d) -> (B, heads, H, W, d)
        logits_h = torch.einsum('bnhwd,hkd->bnhwk', q, rel_h)
        logits_w = torch.einsum('bnhwd,wkd->bnhwk', q, rel_w)
        # (B, heads, H, W, H) -> (B, heads, N, H); (B, heads, H, W, W) -> (B, heads, N, W)
        return logits_h.reshape(B, heads, N, height), logits_w.reshape(B, heads, N, width)

    def resolve_impl(self, batch: int, num_tokens: int) -> str:
        """The implementation ``forward`` uses for a batch of ``num_tokens``-token maps; ``'auto'``
        exports as ``'matmul'`` (a comparison of the traced size would fix the choice in the graph)."""
        if self.attn_impl != 'auto':
            return self.attn_impl
        if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
            return 'matmul'
        fits = batch * self.num_heads * num_tokens * num_tokens <= self.auto_max_logits
        return 'matmul' if fits else 'sdpa'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), or (B, C, ceil(H / 2), ceil(W / 2)) with stride 2."""
        B, C, H, W = x.shape
        N, heads, d = H * W, self.num_heads, self.head_dims
        # (B, 3C, H, W) -> (B, 3, heads, d, N) -> 3 x (B, heads, d, N) -> 3 x (B, heads, N, d)
        q, k, v = (t.transpose(-1, -2) for t in self.qkv(x).reshape(B, 3, heads, d, N).unbind(1))
        q = q * self.scale
        logits_h, logits_w = self.rel_logits(q, H, W)  # (B, heads, N, H), (B, heads, N, W)
        if self.resolve_impl(B, N) == 'sdpa':
            out = self.fused_attention(q, k, v, logits_h, logits_w, H, W)
        else:
            # (B, heads, N, N) -> (B, heads, N, Hk, Wk): the row logits broadcast over the key
            # columns, the column logits over the key rows
            logits = (q @ k.transpose(-1, -2)).view(B, heads, N, H, W)
            logits = logits + logits_h.unsqueeze(-1) + logits_w.unsqueeze(-2)
            out = logits.view(B, heads, N, N).softmax(dim=-1) @ v
        out = out.transpose(-1, -2).reshape(B, C, H, W)  # (B, heads, N, d) -> (B, heads, d, N) -> (B, C, H, W)
        return ceil_pool2d(out, 2) if self.stride == 2 else out

    @staticmethod
    def fused_attention(q, k, v, logits_h, logits_w, height: int, width: int) -> torch.Tensor:
        """``softmax(q k^T + relative logits) v`` by one SDPA call, no N x N tensor.

        Args:
            q, k, v (Tensor): (B, heads, N, d), q already scaled.
            logits_h, logits_w (Tensor): (B, heads, N, H) and (B, heads, N, W) from
                :meth:`rel_logits`.
        """
        B, heads, N, d = q.shape
        token = torch.arange(N, device=q.device)
        onehot_h = (token[:, None] // width == torch.arange(height, device=q.device)).to(q.dtype)  # (N, H): key row
        onehot_w = (token[:, None] % width == torch.arange(width, device=q.device)).to(q.dtype)  # (N, W): key column
        q = torch.cat([q, logits_h, logits_w], dim=-1)  # (B, heads, N, d + H + W)
        k = torch.cat([k, onehot_h.expand(B, heads, N, height), onehot_w.expand(B, heads, N, width)], dim=-1)
        # one head width for q, k and v, a multiple of 8 (zeros add nothing; the padded output
        # columns are dropped)
        padded = -(-q.shape[-1] // 8) * 8
        q, k, v = (F.pad(t, (0, padded - t.shape[-1])) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)[..., :d]

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, feat_size={self.feat_size}, '
                f'stride={self.stride}, fixed_input_size={self.fixed_input_size}, attn_impl={self.attn_impl!r}')
