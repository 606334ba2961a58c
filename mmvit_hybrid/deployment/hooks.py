"""Export-time hooks: switch the few shape-dependent shortcuts of the backbones to a form that the
ONNX exporters trace for every input size, without changing any result.

Each piece below depends on the input size in a way that the exporters fix at the export size.
``torch.onnx.export(dynamo=False)`` bakes the branch (or kernel) of the export size into the graph,
so other sizes silently take the wrong path (or fail); ``dynamo=True`` turns a comparison into a
guard that specialises the dynamic H/W and the export fails. The hooks take the general path at
every size:

* BoTNet ``RelPosAttention``: ``attn_impl='auto'`` picks ``'matmul'`` or ``'sdpa'`` by a Python
  comparison of the token count, which a traced graph would fix at the export size; the hook
  pins the explicit ``'matmul'`` path (the same function: ``tests/test_botnet.py`` checks the two
  implementations against each other). The layer's table resampling, relative -> absolute gather
  and ceil-mode pooling are written without shape branches, so they need no hook.
* Ceil-mode pooling (VOLO's outlook pooling ``nn.AvgPool2d(s, ceil_mode=True)`` and stride-32
  resampler ``nn.MaxPool2d(2, ceil_mode=True)``; BoTNet's ``avg_pool_2x2_ceil``): the same values
  by floor-mode pooling of a padded map (:func:`ceil_mode_pool2d`, :func:`avg_pool_2x2_ceil`),
  whose output size ``torch.export`` can relate to the rest of the graph: with ceil mode it adds
  guards it cannot prove for every H (``ceil(H / 2) == (H - 1) // 2 + 1``) and stops, or
  ``torch.onnx`` silently restricts H and W to multiples of 32.
* ``nn.AdaptiveAvgPool2d`` with an output other than 1x1 (mmseg's PPM in UPerHead: bins 1, 2, 3,
  6): both exporters fix its kernel at the export size (the TorchScript one refuses a dynamic
  input, "input size not accessible"; the dynamo one specialises the graph), so another size gets
  wrong values or fails. The hook runs :func:`adaptive_avg_pool2d`, the same bins (start
  ``floor(i H / n)``, end ``ceil((i + 1) H / n)``) written as two matrix products with 0/1 bin
  matrices computed in the graph from H and W, divided by the bin areas. 1x1 outputs (global
  pooling) export as ``GlobalAveragePool``/``ReduceMean`` at any size and are left alone.
* The fused outlook-attention op: when the compiled ``mmvit_hybrid._ext`` is not loaded, VOLO runs
  the unfold/fold reference, and ``fold`` would export as ``Col2Im``. The hook routes the outlook
  layers through an export-only op (``mmvit_hybrid_deploy::outlook_attention``, the reference as its
  kernel) that has the same gather + matmul translation as the compiled op.
* SyncBN (the segmentation configs) becomes BN (mmengine's ``revert_sync_batchnorm``), done by the
  model loader.
"""
import contextlib
import functools
import math
from unittest import mock

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

EXPORT_OP_NAMESPACE = 'mmvit_hybrid_deploy'
_export_op = None


def export_outlook_op():
    """The export-only outlook-attention op, ``torch.ops.mmvit_hybrid_deploy.outlook_attention``
    (defined on first use; the unfold/fold reference is its kernel)."""
    global _export_op
    if _export_op is None:
        from mmvit_hybrid.ops import outlook_attention_reference

        @torch.library.custom_op(f'{EXPORT_OP_NAMESPACE}::outlook_attention', mutates_args=())
        def outlook_attention(value: torch.Tensor, attn: torch.Tensor, kernel_size: int, padding: int,
                              stride: int) -> torch.Tensor:
            return outlook_attention_reference(value, attn, kernel_size, padding, stride)

        @outlook_attention.register_fake
        def _(value, attn, kernel_size, padding, stride):
            return torch.empty_like(value)

        _export_op = outlook_attention
    return _export_op


def bin_matrix(size, bins: int, like: torch.Tensor) -> torch.Tensor:
    """(bins, size) 0/1 matrix of adaptive pooling along one axis: row i marks the inputs
    ``floor(i * size / bins) <= j < ceil((i + 1) * size / bins)`` (PyTorch's bin edges).

    Args:
        size (int | SymInt): Input length (a traced size while exporting).
        bins (int): Output length.
        like (Tensor): Gives the dtype and device.
    """
    pos = torch.arange(size, device=like.device)  # (size, ), int64
    i = torch.arange(bins, device=like.device)[:, None]  # (bins, 1)
    start = (i * size) // bins
    end = ((i + 1) * size + bins - 1) // bins
    return ((pos >= start) & (pos < end)).to(like.dtype)  # (bins, size)


def adaptive_avg_pool2d(x: torch.Tensor, output_size) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` with standard ops that stay dynamic in an exported graph:
    (B, C, H, W) -> (B, C, h, w) as ``(Mh @ x @ Mw^T) / (count_h count_w^T)``, with ``Mh``
    (h, H) and ``Mw`` (w, W) from :func:`bin_matrix` (sums over each bin, then the bin area).

    Args:
        x (Tensor): (B, C, H, W) or (C, H, W).
        output_size (int | tuple): (h, w) as for ``nn.AdaptiveAvgPool2d``; ``None`` keeps that axis.
    """
    H, W = x.shape[-2:]
    out_h, out_w = _pair(output_size)
    rows = bin_matrix(H, out_h if out_h is not None else H, x)  # (h, H)
    cols = bin_matrix(W, out_w if out_w is not None else W, x)  # (w, W)
    area = rows.sum(1)[:, None] * cols.sum(1)[None, :]  # (h, w) inputs per bin
    return rows @ x @ cols.t() / area  # (h, H) @ (..., H, W) @ (W, w) -> (..., h, w)


def ceil_mode_pool2d(pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``nn.AvgPool2d`` / ``nn.MaxPool2d`` with ``ceil_mode=True``, no padding and kernel ==
    stride ``s`` (VOLO's outlook pooling and stride-32 resampler), as floor-mode pooling of the map
    padded at the bottom/right to ``ceil(H / s) * s``: (B, C, H, W) -> (B, C, ceil(H / s),
    ceil(W / s)), the same values (max: padded with -inf; average: the window sum over its
    in-bounds count, as PyTorch divides an overhanging ceil-mode window).

    Under ``torch.export`` the ceil-mode size rule adds guards that it cannot prove for every H
    (``2 * ((H - 1) // 2) < H``, and ``ceil(H / 2) == (H - 1) // 2 + 1`` where the outlooker
    reshapes to ``math.ceil(H / s)``); this form's size is ``ceil(H / s)`` itself.
    """
    s = pool.stride if isinstance(pool.stride, int) else pool.stride[0]
    H, W = x.shape[-2:]
    pad = (0, math.ceil(W / s) * s - W, 0, math.ceil(H / s) * s - H)  # (left, right, top, bottom)
    if isinstance(pool, nn.MaxPool2d):
        return F.max_pool2d(F.pad(x, pad, value=float('-inf')), s, s)
    return _padded_avg_pool2d(x, pad, s)


def _padded_avg_pool2d(x: torch.Tensor, pad, s: int) -> torch.Tensor:
    """s x s floor-mode average pooling of ``x`` zero-padded by ``pad``, each window divided by
    its in-bounds count (PyTorch's rule for an overhanging ceil-mode window)."""
    H, W = x.shape[-2:]
    window_mean = F.avg_pool2d(F.pad(x, pad), s, s)  # (sum of the in-bounds elements) / s^2
    in_bounds = F.avg_pool2d(F.pad(x.new_ones(1, 1, H, W), pad), s, s)  # (in-bounds elements) / s^2
    return window_mean / in_bounds


def avg_pool_2x2_ceil(x: torch.Tensor) -> torch.Tensor:
    """BoTNet's ``avg_pool_2x2_ceil`` (``rel_pos_attention.py``) with the output size written as
    the stride-2 shortcut conv's, ``(H - 1) // 2 + 1``: pad one row and column of zeros, 2x2
    floor-mode pooling (an even map drops the padding), divided by the in-bounds fraction. The
    layer pads by ``H % 2``, whose size ``torch.export`` cannot prove equal to the shortcut's."""
    return _padded_avg_pool2d(x, (0, 1, 0, 1), 2)  # (B, C, (H - 1) // 2 + 1, (W - 1) // 2 + 1)


def _is_ceil_pool(m: nn.Module) -> bool:
    """A 2-D average/max pooling that :func:`ceil_mode_pool2d` reproduces."""
    if not isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) or not m.ceil_mode:
        return False
    square = _pair(m.kernel_size) == _pair(m.stride) and _pair(m.stride)[0] == _pair(m.stride)[1]
    plain = _pair(m.padding) == (0, 0) and (isinstance(m, nn.AvgPool2d) or _pair(m.dilation) == (1, 1))
    extra = isinstance(m, nn.MaxPool2d) and m.return_indices
    extra = extra or (isinstance(m, nn.AvgPool2d) and m.divisor_override is not None)
    return square and plain and not extra


def _is_global(output_size) -> bool:
    return _pair(output_size) == (1, 1)


@contextlib.contextmanager
def export_mode(model: torch.nn.Module):
    """Apply the hooks of the module docstring to ``model`` while the context is open.

    Args:
        model (nn.Module): The model (or wrapper) about to be exported.
    """
    from mmvit_hybrid.models.layers import RelPosAttention, outlooker, rel_pos_attention
    from mmvit_hybrid.ops import ext_available

    with contextlib.ExitStack() as stack:
        modules = list(model.modules())
        for m in modules:
            if isinstance(m, RelPosAttention):
                # the explicit logits: 'auto' would choose by a comparison of the traced size
                stack.enter_context(mock.patch.object(m, 'attn_impl', 'matmul'))
            elif _is_ceil_pool(m):
                stack.enter_context(mock.patch.object(m, 'forward', functools.partial(ceil_mode_pool2d, m)))
            elif isinstance(m, nn.AdaptiveAvgPool2d) and not _is_global(m.output_size):
                stack.enter_context(mock.patch.object(
                    m, 'forward', functools.partial(adaptive_avg_pool2d, output_size=m.output_size)))
        if any(isinstance(m, RelPosAttention) for m in modules):
            stack.enter_context(mock.patch.object(rel_pos_attention, 'avg_pool_2x2_ceil', avg_pool_2x2_ceil))
        if not ext_available() and any(isinstance(m, outlooker.OutlookAttention) for m in modules):
            stack.enter_context(mock.patch.object(outlooker, 'outlook_attention', export_outlook_op()))
        yield model
