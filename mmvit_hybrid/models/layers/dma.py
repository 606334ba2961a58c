"""DMA, the Dynamic Multi-level Attention token mixer of DMFormer (Wei et al., ICASSP 2023,
arXiv 2209.07738; called MCA in the paper's v1 "ConvFormer").

No official code is public. The paper says DMA "captures different patterns of input images by
multiple kernel sizes and enables input-adaptive weights with a gating mechanism"; a reading note
adds depthwise (dilated) convolutions and an SE-style gate (global average pooling, FC, ReLU, FC,
sigmoid). Everything below is this package's reconstruction of that description:

1. input projection ``u = GELU(Conv1x1(x))`` (the channel mixing that precedes the depthwise
   convs in VAN's attention and in separable-conv MetaFormers);
2. ``L`` parallel "levels", each a depthwise conv of kernel ``k_i`` and dilation ``d_i`` on ``u``
   (same padding); the default ``k = (3, 5, 7)``, ``d = (1, 2, 3)`` covers receptive fields of
   3, 9 and 19 pixels;
3. a gate gives one weight per level and channel, ``a`` of shape (B, L, C):
   ``dynamic`` (default): ``a = sigmoid(FC(ReLU(FC(GAP(u)))))`` with 1x1 convs as FC layers and a
   hidden width of ``max(C // gate_reduction, 16)``, so the weights depend on the input;
   ``static`` (ablation): ``a = sigmoid(w)`` with a learned (L, C) tensor ``w``, the same for
   every input. ``gate_act='softmax'`` normalises over the levels instead (SKNet's selection);
4. fusion ``sum_i a_i * DWConv_i(u)`` and an output projection ``Conv1x1``.
"""
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmengine.model import BaseModule


class DMA(BaseModule):
    """Dynamic Multi-level Attention: gated multi-kernel depthwise convolutions.

    Args:
        embed_dims (int): Channels C of the (B, C, H, W) input and output.
        kernel_sizes (Sequence[int]): Kernel size of each level's depthwise conv (odd).
            Defaults to (3, 5, 7).
        dilations (Sequence[int]): Dilation of each level, one per kernel size.
            Defaults to (1, 2, 3).
        gate (str): ``'dynamic'`` (input-adaptive weights from pooled features) or ``'static'``
            (learned, input-independent weights). Defaults to ``'dynamic'``.
        gate_act (str): ``'sigmoid'`` (independent weights per level) or ``'softmax'`` (weights
            normalised over the levels; needs at least two levels). Defaults to ``'sigmoid'``.
        gate_reduction (int): Hidden width of the dynamic gate is
            ``max(embed_dims // gate_reduction, 16)``. Defaults to 4.
        act_cfg (dict): Activation after the input projection. Defaults to GELU.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmvit_hybrid.models.layers import DMA
        >>> dma = DMA(64)
        >>> tuple(dma(torch.rand(2, 64, 9, 13)).shape)
        (2, 64, 9, 13)
        >>> tuple(dma.level_weights(torch.rand(2, 64, 9, 13)).shape)
        (2, 3, 64, 1, 1)
    """
    gates = ('dynamic', 'static')
    gate_acts = ('sigmoid', 'softmax')

    def __init__(self,
                 embed_dims: int,
                 kernel_sizes: Sequence[int] = (3, 5, 7),
                 dilations: Sequence[int] = (1, 2, 3),
                 gate: str = 'dynamic',
                 gate_act: str = 'sigmoid',
                 gate_reduction: int = 4,
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        kernel_sizes, dilations = tuple(kernel_sizes), tuple(dilations)
        if not kernel_sizes or len(kernel_sizes) != len(dilations):
            raise ValueError(f'DMA: kernel_sizes and dilations need the same, non-zero number of '
                             f'entries (one per level), got kernel_sizes={kernel_sizes}, '
                             f'dilations={dilations}')
        if not all(isinstance(k, int) and k > 0 and k % 2 == 1 for k in kernel_sizes):
            raise ValueError(f'DMA: kernel_sizes must be positive odd ints (same padding), '
                             f'got {kernel_sizes}')
        if not all(isinstance(d, int) and d > 0 for d in dilations):
            raise ValueError(f'DMA: dilations must be positive ints, got {dilations}')
        if gate not in self.gates:
            raise ValueError(f'DMA: unknown gate {gate!r}; choose one of {list(self.gates)}')
        if gate_act not in self.gate_acts:
            raise ValueError(f'DMA: unknown gate_act {gate_act!r}; choose one of {list(self.gate_acts)}')
        if gate_act == 'softmax' and len(kernel_sizes) == 1:
            raise ValueError("DMA: gate_act='softmax' over a single level is the constant 1; "
                             "use gate_act='sigmoid' or more levels")
        if not isinstance(gate_reduction, int) or gate_reduction < 1:
            raise ValueError(f'DMA: gate_reduction must be an int >= 1, got {gate_reduction!r}')
        self.embed_dims = C = embed_dims
        self.kernel_sizes = kernel_sizes
        self.dilations = dilations
        self.num_levels = L = len(kernel_sizes)
        self.gate_mode = gate
        self.gate_act = gate_act

        self.proj_in = nn.Conv2d(C, C, 1)
        self.act = build_activation_layer(act_cfg)
        self.levels = nn.ModuleList(
            nn.Conv2d(C, C, k, padding=d * (k - 1) // 2, dilation=d, groups=C)
            for k, d in zip(kernel_sizes, dilations))
        if gate == 'dynamic':
            hidden = max(C // gate_reduction, 16)
            self.gate = nn.Sequential(OrderedDict(
                pool=nn.AdaptiveAvgPool2d(1),
                reduce=nn.Conv2d(C, hidden, 1),
                act=build_activation_layer(dict(type='ReLU')),
                expand=nn.Conv2d(hidden, L * C, 1)))
        else:
            self.gate_logits = nn.Parameter(torch.zeros(L, C))
        self.proj_out = nn.Conv2d(C, C, 1)

    def _weights(self, u: torch.Tensor) -> torch.Tensor:
        """Per-level, per-channel weights (B or 1, L, C, 1, 1) for the projected input ``u``."""
        if self.gate_mode == 'dynamic':
            # (B, C, H, W) -> (B, L*C, 1, 1) -> (B, L, C, 1, 1)
            logits = self.gate(u).reshape(u.shape[0], self.num_levels, self.embed_dims, 1, 1)
        else:
            # (L, C) -> (1, L, C, 1, 1)
            logits = self.gate_logits.reshape(1, self.num_levels, self.embed_dims, 1, 1)
        return logits.sigmoid() if self.gate_act == 'sigmoid' else logits.softmax(dim=1)

    def level_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The gate's weights for input ``x`` (B, C, H, W): (B, L, C, 1, 1) for the dynamic gate,
        (1, L, C, 1, 1) for the static one. For analysis and tests."""
        return self._weights(self.act(self.proj_in(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        u = self.act(self.proj_in(x))
        weights = self._weights(u)
        fused = sum(weights[:, i] * level(u) for i, level in enumerate(self.levels))
        return self.proj_out(fused)
