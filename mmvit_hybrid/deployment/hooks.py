"""The export-time hook for a third-party layer that both ONNX exporters would fix at the export
size. This package's layers export for every size by themselves (without the compiled extension
the outlook op records itself as one node, ``mmvit_hybrid.ops.outlook_attention.reference_op``).

``nn.AdaptiveAvgPool2d`` with an output other than 1x1 (mmseg's PPM in UPerHead: bins 1, 2, 3, 6):
``torch.onnx.export(dynamo=False)`` bakes its kernel into the graph, so other sizes silently get
wrong values (or fail), and ``dynamo=True`` specialises the dynamic H/W. The hook runs
:func:`adaptive_avg_pool2d`, the same bins (start ``floor(i H / n)``, end ``ceil((i + 1) H / n)``)
as two matrix products with 0/1 bin matrices computed in the graph from H and W, divided by the bin
areas. 1x1 outputs (global pooling) export as ``GlobalAveragePool``/``ReduceMean`` at any size and
are left alone.

SyncBN (the segmentation configs) becomes BN (mmengine's ``revert_sync_batchnorm``) in the model
loader.
"""
import contextlib
import functools
from unittest import mock

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair


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


def _is_global(output_size) -> bool:
    return _pair(output_size) == (1, 1)


@contextlib.contextmanager
def export_mode(model: torch.nn.Module):
    """Apply the hook of the module docstring to ``model`` while the context is open.

    Args:
        model (nn.Module): The model (or wrapper) about to be exported.
    """
    with contextlib.ExitStack() as stack:
        for m in model.modules():
            if isinstance(m, nn.AdaptiveAvgPool2d) and not _is_global(m.output_size):
                stack.enter_context(mock.patch.object(
                    m, 'forward', functools.partial(adaptive_avg_pool2d, output_size=m.output_size)))
        yield model
