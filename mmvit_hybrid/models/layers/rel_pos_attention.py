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

Four implementations of the same function (``attn_impl``), and ``'auto'`` (default) choosing:

* ``'matmul'``: explicit logits with the fewest passes over the N x N tensor. The relative
  logits of every offset, ``q . rel_h`` (N, 2H - 1) and ``q . rel_w`` (N, 2W - 1), are two small
  matmuls; the offset -> key shift is a zero-copy strided view
  (:func:`relative_to_absolute`), and :class:`RelPosLogits` adds both, broadcast, in place into
  the ``q @ k^T`` buffer (its backward reduces the gradient over key columns / rows instead of
  autograd's copies of an in-place view). Then softmax and ``attn @ v``: two (B, heads, N, N)
  tensors at most, against five temporaries in timm's ``BottleneckAttn``.
* ``'sdpa'``: the relative logits are folded into the dot product, so one fused
  ``scaled_dot_product_attention`` call without any N x N tensor computes them. With
  ``gh = q . rel_h[hk - hq + H - 1]`` over the H key rows (a (N, H) tensor) and ``gw`` over the W
  key columns (N, W), ``q . rel = [gh, gw] . [onehot(hk), onehot(wk)]``; the queries become
  ``[q, gh, gw]`` (width d + H + W) and the keys ``[k, onehot(hk), onehot(wk)]``; q, k and v are
  zero-padded to one width, a multiple of 8, so the fused (flash) kernels apply (they need equal
  widths; zeros change no dot product). Memory is O(N) instead of O(N^2), for about twice the
  attention's matmul work.
* ``'sdpa_bias'``: the (B, heads, N, N) relative logits are materialised and passed to SDPA as an
  additive ``attn_mask``.
* ``'einsum'``: the straightforward reference (explicit logits, softmax, weighted sum; relative
  logits from gathered (S, S, d) tables, independent of the strided view above).
* ``'auto'``: ``'matmul'`` while the (B, heads, N, N) logits hold at most
  :attr:`RelPosAttention.auto_max_logits` elements (2^24, 64 MiB in float32: four 32 x 32 maps,
  i.e. four 512 x 512 BoTNet inputs), ``'sdpa'`` above (O(N) memory for large maps, such as the
  64 x 64 maps of the 1024 x 1024 detection canvas). Measured on the CPU
  (``benchmarks/README.md``, ``configs/botnet/README.md``): ``'matmul'`` was the fastest at 14x14,
  32x32 and 64x64, but at 64x64 it holds 3.4x the memory of ``'sdpa'``.

Memory layout (all implementations): for float32 CPU tensors outside autocast and
``torch.compile``, in inference, or in training on one thread, the fused q/k/v 1x1 projection runs
as :class:`Conv1x1ChannelsLast` (oneDNN on a channels-last copy of the input) and the attention
works on that token-major layout: each q/k/v row of d values is contiguous, so the dense
(B, heads, N, d) operands are cheap row copies. The output is NCHW in every case (mmcv 2.1.0's CPU
``RoIAlign`` reads channels-last features wrongly, and the c5 map reaches it through the neck). On one
thread this also replaces torch's ``slow_conv2d`` path for the 1x1 convolution, measured 2.2x
slower than oneDNN here (AMD EPYC, ``benchmarks/README.md``). Elsewhere (GPU, autocast, compile,
multi-threaded training, whose channels-last backward measured slower) the projection is
``self.qkv(x)`` and the attention reads the NCHW layout; both layouts give the same function
(tested with gradients).

Any input size: with ``fixed_input_size=False`` (default) a feature map of another size than the
tables' resamples them by linear interpolation along the offset axis (``align_corners=True``: the
zero offset and the largest offsets map onto each other); at the trained size the tables are used
as they are. ``fixed_input_size=True`` is the paper's protocol: other sizes raise an error.
"""
from typing import List, Sequence, Tuple, Union

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


def _offset_view_geometry(strides: Sequence[int], size: int, dim: int) -> Tuple[List[int], int]:
    """Strides and element offset, within a (..., 2S - 1) tensor of these ``strides``, of the
    (..., S) per-key view: ``[iq, ik]`` sits at offset S - 1 + ik - iq, so one step along the query
    axis ``dim`` is one offset back, and query 0 starts at offset S - 1."""
    strides = list(strides)
    strides[dim] -= strides[-1]
    return strides, (size - 1) * strides[-1]


def relative_to_absolute(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """Zero-copy view from logits per relative offset to logits per absolute key position.

    Args:
        logits (Tensor): (..., 2S - 1) logits of every offset, the query position along ``dim``
            having size S (e.g. (B, heads, H, W, 2H - 1) with ``dim=2``).
        dim (int): The query axis the offsets belong to (non-negative).

    Returns:
        Tensor: (..., S) view with ``[.., iq (at dim), .., ik] = logits[.., iq, .., ik - iq + S - 1]``.
        The view never overlaps itself (a step along ``dim`` skips 2S - 2 >= S offsets).
        Not for autograd (its ``as_strided`` reaches before the narrowed start, which autograd's
        ``as_strided`` backward does not map back): differentiate through
        :class:`RelativeToAbsolute` or :class:`RelPosLogits`, whose backward is
        :func:`absolute_to_relative`.
    """
    size = logits.shape[dim]
    if logits.shape[-1] != 2 * size - 1:
        raise ValueError(f'relative_to_absolute: {logits.shape[-1]} offsets for {size} positions, '
                         f'expected {2 * size - 1}')
    strides, _ = _offset_view_geometry(logits.stride(), size, dim)
    # narrow to query 0's zero offset instead of passing the element offset to as_strided: it then
    # keeps the narrowed view's storage offset, which torch.compile cannot read as a number
    zero_offset = logits.narrow(-1, size - 1, size)  # (..., S): [.., iq, .., ik] -> offset S - 1 + ik
    return zero_offset.as_strided(zero_offset.shape, strides)


def absolute_to_relative(grad: torch.Tensor, dim: int) -> torch.Tensor:
    """The gradient of :func:`relative_to_absolute`: (..., S) per key -> a new (..., 2S - 1) per
    offset (offsets no query reaches get 0). Functional (``as_strided_scatter``), so that
    ``torch.compile`` can trace it.

    Args:
        grad (Tensor): (..., S) gradient of the per-key view, query axis ``dim`` of size S.
        dim (int): The query axis (non-negative).
    """
    size = grad.shape[dim]
    zeros = grad.new_zeros(*grad.shape[:-1], 2 * size - 1)
    strides, start = _offset_view_geometry(zeros.stride(), size, dim)
    return torch.as_strided_scatter(zeros, grad, grad.shape, strides, start)


def avg_pool_2x2_ceil(x: torch.Tensor) -> torch.Tensor:
    """2x2, stride-2 average pooling with ``ceil_mode``: (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2));
    the windows cut by an odd edge average their in-bounds elements.

    Under ``torch.compile`` an odd map is zero-padded and divided by the in-bounds fraction instead:
    inductor (torch 2.13) computes the *backward* of ``avg_pool2d(ceil_mode=True)`` with the full
    divisor 4 on odd maps (the forward is right, the gradients of the edge cells are halved or
    quartered; ``tests/test_botnet.py`` shows it).
    """
    H, W = x.shape[-2:]
    if not torch.compiler.is_compiling() or (H % 2 == 0 and W % 2 == 0):
        return F.avg_pool2d(x, 2, 2, ceil_mode=True)
    pad = (0, W % 2, 0, H % 2)
    window_sum = F.avg_pool2d(F.pad(x, pad), 2, 2)  # (sum of the in-bounds elements) / 4
    in_bounds = F.avg_pool2d(F.pad(x.new_ones(1, 1, H, W), pad), 2, 2)  # (in-bounds elements) / 4
    return window_sum / in_bounds


def scaled_dense_copy(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x * scale`` as a new contiguous tensor: one pass (``out=``) where no gradient is needed,
    else a contiguous copy scaled in place (differentiable)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return x.clone(memory_format=torch.contiguous_format).mul_(scale)
    return torch.mul(x, scale, out=torch.empty(x.shape, dtype=x.dtype, device=x.device))


class RelativeToAbsolute(torch.autograd.Function):
    """Differentiable, materialised :func:`relative_to_absolute`: (..., 2S - 1) -> new (..., S).

    Args (of ``apply``):
        logits (Tensor): (..., 2S - 1) logits per offset.
        dim (int): The query axis (non-negative).
    """

    @staticmethod
    def forward(ctx, logits, dim):
        ctx.dim = dim
        return relative_to_absolute(logits, dim).contiguous()

    @staticmethod
    def backward(ctx, grad):
        return absolute_to_relative(grad, ctx.dim), None


class RelPosLogits(torch.autograd.Function):
    """``q @ k^T`` plus 2-D relative logits, computed into one (B, heads, N, N) buffer.

    Forward: ``logits[.., (hq, wq), (hk, wk)] = q . k + logits_h[.., hq, wq, hk - hq + H - 1]
    + logits_w[.., hq, wq, wk - wq + W - 1]``, the two relative terms added in place (broadcast)
    to the matmul's output. Backward: ``grad_q = g @ k``, ``grad_k = g^T @ q``, and the relative
    terms get ``g`` summed over key columns (resp. rows), scattered back to the offsets
    (:func:`absolute_to_relative`); no N x N copy (autograd's in-place-on-view handling would copy
    ``g`` twice).

    Args (of ``apply``):
        q (Tensor): (B, heads, N, d) queries (already scaled), N = H * W.
        k (Tensor): (B, heads, N, d) keys.
        logits_h (Tensor): (B, heads, H, W, 2H - 1): ``q . rel_h`` for every row offset.
        logits_w (Tensor): (B, heads, H, W, 2W - 1): ``q . rel_w`` for every column offset.
    """

    @staticmethod
    def forward(ctx, q, k, logits_h, logits_w):
        B, heads, H, W, _ = logits_h.shape
        ctx.save_for_backward(q, k)
        ctx.grid_shape = (B, heads, H, W)
        logits = q @ k.transpose(-1, -2)  # (B, heads, N, N)
        # (B, heads, N, N) -> (B, heads, Hq, Wq, Hk, Wk); the relative terms broadcast over Wk, Hk
        grid = logits.view(B, heads, H, W, H, W)
        grid.add_(relative_to_absolute(logits_h, 2).unsqueeze(-1))
        grid.add_(relative_to_absolute(logits_w, 3).unsqueeze(-2))
        return logits

    @staticmethod
    def backward(ctx, grad):
        q, k = ctx.saved_tensors
        B, heads, H, W = ctx.grid_shape
        grad = grad.contiguous()
        # computed as (B, heads, d, N) and returned transposed: the layout of the q/k channels in
        # the NCHW (B, 3C, H, W) projection, which the gradient is stacked into next
        grad_q = grad_k = None
        if ctx.needs_input_grad[0]:
            grad_q = (k.transpose(-1, -2) @ grad.transpose(-1, -2)).transpose(-1, -2)
        if ctx.needs_input_grad[1]:
            grad_k = (q.transpose(-1, -2) @ grad).transpose(-1, -2)
        grid = grad.view(B, heads, H, W, H, W)  # (B, heads, Hq, Wq, Hk, Wk)
        # relative terms: summed over key columns (rows), back to the offsets
        grad_h = absolute_to_relative(grid.sum(-1), 2) if ctx.needs_input_grad[2] else None
        grad_w = absolute_to_relative(grid.sum(-2), 3) if ctx.needs_input_grad[3] else None
        return grad_q, grad_k, grad_h, grad_w


class Conv1x1ChannelsLast(torch.autograd.Function):
    """A 1x1 convolution run by oneDNN on a channels-last copy of the input (CPU, float32).

    Forward: ``torch.mkldnn_convolution`` on channels-last data, which measured 2.2x faster here
    than what ``F.conv2d`` dispatches to for a single-threaded 1x1 convolution. Backward: torch's
    ``convolution_backward`` on the NCHW input and gradient, the layout whose backward measured
    fastest (channels-last: 1.0-1.7x slower). The output is channels-last.

    Args (of ``apply``):
        x (Tensor): (B, C_in, H, W) input.
        weight (Tensor): (C_out, C_in, 1, 1).
        bias (Tensor, optional): (C_out, ).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.mkldnn_convolution(x.contiguous(memory_format=torch.channels_last), weight, bias,
                                        (0, 0), (1, 1), (1, 1), 1)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad.contiguous(), x.contiguous(), weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], [0, 0],
            [1, 1], False, [0, 0], 1, mask)
        return grad_x, grad_w, grad_b


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
        attn_impl (str): ``'auto'`` (``'matmul'`` up to :attr:`auto_max_logits` logits, else
            ``'sdpa'``), ``'matmul'`` (explicit logits, relative terms added in place),
            ``'sdpa'`` (relative logits folded into SDPA's q/k, O(N) memory), ``'sdpa_bias'``
            (SDPA with the N x N logits as additive mask) or ``'einsum'`` (reference). See the
            module docstring. Defaults to ``'auto'``.
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
    attn_impls = ('auto', 'matmul', 'sdpa', 'sdpa_bias', 'einsum')
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

    def rel_logits_by_offset(self, q: torch.Tensor, height: int,
                             width: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Relative logits of q (B, heads, N, d), N = H * W, for every offset:
        (B, heads, H, W, 2H - 1) = q . rel_h and (B, heads, H, W, 2W - 1) = q . rel_w
        (:func:`relative_to_absolute` views them per key row / column)."""
        rel_h, rel_w = self.rel_tables(height, width)
        B, heads, N, d = q.shape
        q = q.reshape(B, heads, height, width, d)  # (B, heads, N, d) -> (B, heads, H, W, d)
        return q @ rel_h.t(), q @ rel_w.t()

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """The fused q/k/v 1x1 convolution, (B, C, H, W) -> (B, 3C, H, W), channels-last or NCHW.

        :class:`Conv1x1ChannelsLast` (oneDNN on a channels-last copy, channels-last output: the
        token-major layout the attention reads rows of q, k and v from) for float32 CPU tensors
        outside autocast and ``torch.compile``, where either no gradient is needed (inference) or
        torch's own dispatch would not use oneDNN for this convolution (one thread and a batch
        below 16: ``aten/src/ATen/native/Convolution.cpp`` then picks ``slow_conv2d``, "THNN is
        faster when single-threaded", measured 2.2x slower than oneDNN here). Otherwise
        ``self.qkv(x)`` (NCHW): with several threads the channels-last backward measured slower.
        """
        weight = self.qkv.weight
        if (torch.compiler.is_compiling() or x.device.type != 'cpu' or x.dtype != torch.float32
                or weight.dtype != torch.float32 or not torch.backends.mkldnn.is_available()
                or not torch.backends.mkldnn.enabled or torch.is_autocast_enabled('cpu')):
            return self.qkv(x)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
        if not needs_grad or (torch.get_num_threads() == 1 and x.shape[0] < 16):
            return Conv1x1ChannelsLast.apply(x, weight, self.qkv.bias)
        return self.qkv(x)

    def resolve_impl(self, batch: int, num_tokens: int) -> str:
        """The implementation ``forward`` uses for a batch of ``num_tokens``-token maps."""
        if self.attn_impl != 'auto':
            return self.attn_impl
        fits = batch * self.num_heads * num_tokens * num_tokens <= self.auto_max_logits
        return 'matmul' if fits else 'sdpa'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), or (B, C, ceil(H / 2), ceil(W / 2)) with stride 2."""
        B, C, H, W = x.shape
        N, heads, d = H * W, self.num_heads, self.head_dims
        qkv = self.project_qkv(x)
        tokens = qkv.is_contiguous(memory_format=torch.channels_last) and not qkv.is_contiguous()
        if tokens:
            # (B, 3C, H, W) channels-last = (B, H, W, 3C) in memory -> (B, N, 3, heads, d) -> 3 x
            # (B, N, heads, d) -> (B, heads, N, d); the backward stacks the gradients in that layout
            q, k, v = (t.transpose(1, 2) for t in qkv.permute(0, 2, 3, 1).reshape(B, N, 3, heads, d).unbind(2))
        else:
            # (B, 3C, H, W) -> (B, 3, heads, d, N) -> 3 x (B, heads, d, N) -> (B, heads, N, d); unbinding
            # before transposing makes the backward stack the gradients straight into NCHW (one pass)
            q, k, v = (t.transpose(-1, -2) for t in qkv.reshape(B, 3, heads, d, N).unbind(1))
        impl = self.resolve_impl(B, N)
        if impl == 'matmul':
            # s (q.k + q.rel) = (s q).k + (s q).rel. Token layout: rows of d are contiguous, so
            # dense (B, heads, N, d) copies are cheap and the matmuls then need none of their own
            if tokens:
                q, k, v = scaled_dense_copy(q, self.scale), k.contiguous(), v.contiguous()
            else:
                q = q * self.scale
            logits = RelPosLogits.apply(q, k, *self.rel_logits_by_offset(q, H, W))  # (B, heads, N, N)
            out = logits.softmax(dim=-1) @ v
        elif impl == 'sdpa':
            logits_h, logits_w = self.rel_logits_by_offset(q, H, W)
            # (B, heads, H, W, H) -> (B, heads, N, H); (B, heads, H, W, W) -> (B, heads, N, W)
            logits_h = RelativeToAbsolute.apply(logits_h, 2).reshape(B, heads, N, H)
            logits_w = RelativeToAbsolute.apply(logits_w, 3).reshape(B, heads, N, W)
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
            logits_h, logits_w = self.rel_logits(q, H, W)
            # (B, heads, N, H, 1) + (B, heads, N, 1, W) -> (B, heads, N, H * W = N)
            rel = (logits_h.unsqueeze(-1) + logits_w.unsqueeze(-2)).reshape(B, heads, N, N)
            if impl == 'sdpa_bias':
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=rel * self.scale, scale=self.scale)
            else:
                attn = ((torch.einsum('bnid,bnjd->bnij', q, k) + rel) * self.scale).softmax(dim=-1)
                out = torch.einsum('bnij,bnjd->bnid', attn, v)
        # (B, heads, N, d) -> (B, heads, d, N) -> (B, C, H, W), NCHW in either layout: a channels-last
        # output would reach mmcv's CPU RoIAlign through the neck, which reads it wrongly (mmcv 2.1.0)
        out = out.transpose(-1, -2).reshape(B, C, H, W)
        return avg_pool_2x2_ceil(out) if self.stride == 2 else out

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, feat_size={self.feat_size}, '
                f'stride={self.stride}, fixed_input_size={self.fixed_input_size}, attn_impl={self.attn_impl!r}')
