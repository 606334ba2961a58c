"""s x s, stride-s pooling that keeps the odd edges (``ceil_mode=True``'s values), written as
floor-mode pooling of a map padded by ``s - 1`` rows and columns.

Two reasons not to call ``ceil_mode=True`` itself: torch 2.13's inductor computes the backward of
``avg_pool2d(ceil_mode=True)`` with divisor ``s^2`` on odd maps (``tests/test_botnet.py`` shows
it), and under ``torch.export`` the ceil-mode size rule adds guards that it cannot prove for every
H, so a dynamic ONNX export fails or is restricted to multiples of 32. Here the output size is
``(H - 1) // s + 1``, the size of a stride-s conv, which the exporters keep symbolic.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def ceil_pool2d(x: torch.Tensor, s: int, mode: str = 'avg') -> torch.Tensor:
    """(B, C, H, W) -> (B, C, ceil(H / s), ceil(W / s)): the mean (over the in-bounds elements)
    or the maximum of each s x s window.

    Args:
        x (Tensor): (B, C, H, W) map.
        s (int): Window size and stride.
        mode (str): ``'avg'`` or ``'max'``. Defaults to ``'avg'``.
    """
    pad = (0, s - 1, 0, s - 1)  # (left, right, top, bottom); floor((H + s - 1) / s) == ceil(H / s)
    if mode == 'max':
        return F.max_pool2d(F.pad(x, pad, value=float('-inf')), s)
    window_mean = F.avg_pool2d(F.pad(x, pad), s)  # (sum of the in-bounds elements) / s^2
    in_bounds = F.avg_pool2d(F.pad(x.new_ones(1, 1, *x.shape[-2:]), pad), s)  # (in-bounds elements) / s^2
    return window_mean / in_bounds


class CeilPool2d(nn.Module):
    """:func:`ceil_pool2d` as a module.

    Args:
        s (int): Window size and stride.
        mode (str): ``'avg'`` or ``'max'``. Defaults to ``'avg'``.
    """

    def __init__(self, s: int, mode: str = 'avg'):
        super().__init__()
        self.s = s
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ceil_pool2d(x, self.s, self.mode)

    def extra_repr(self) -> str:
        return f's={self.s}, mode={self.mode!r}'
