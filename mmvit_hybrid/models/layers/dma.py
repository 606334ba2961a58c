"""DMA, the Dynamic Multi-level Attention token mixer of DMFormer (Wei et al., ICASSP 2023,
arXiv 2209.07738; called MCA in the paper's v1 "ConvFormer").

No official code is public. This is the dataflow the public descriptions give, with the source
of each step (the reading note and the v1 note are quoted in the project's research notes,
``papers.md`` sections 2.2 and 5.1; ``configs/dmformer/README.md`` lists every choice):

1. expand conv ``u = GELU(Conv1x1_{C -> rC}(x))`` (v1, MCA: an "Expand Conv" widens the channels
   before the depthwise convs); ``expand_ratio=None`` drops it (``u = x``). The GELU is ours;
2. ``L`` levels of dilated depthwise convs on ``u`` (abstract: "multiple kernel sizes"; reading
   note: multi-scale *dilated* convolutions). Kernels ``(3, 5, 7)`` and dilations ``(1, 2, 3)``
   (receptive fields 3, 9, 19) are ours;
3. fusion ``X' = sum_i DWConv_i(u)`` (ours: the sources say "fused" without the operator);
4. ``Conv1x1_{rC -> C}(X')`` (reading note; v1: the 1x1 conv brings the channels back to C for the
   residual sum);
5. calibration by an SE vector from the *mixer's input* (reading note, its equations):
   ``V = ReLU(FC(GAP(x)))``, ``Attn = Sigmoid(FC(V))``, ``Output = Attn * Conv1x1(X')``, with
   FCs as 1x1 convs and a hidden width ``max(C // gate_reduction, 16)`` (ours).

Ablations (``gate``): ``'level'`` is this package's earlier reconstruction, kept for comparison
(SK-style weights per level and channel, ``a = act(FC(ReLU(FC(GAP(u)))))`` of shape (B, L, rC),
applied to the levels *before* the 1x1 conv; ``gate_act='softmax'`` normalises over the levels as
SKNet does); ``'static'`` the same weights as learned constants (input-independent); ``'none'``
the plain sum. ``gate='level', expand_ratio=1`` is exactly that earlier DMA.
"""
from collections import OrderedDict
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmengine.model import BaseModule


def _squeeze_excite(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    """``FC(ReLU(FC(GAP(x))))`` with 1x1 convs as the FCs: (B, C_in, H, W) -> (B, C_out, 1, 1)."""
    return nn.Sequential(OrderedDict(
        pool=nn.AdaptiveAvgPool2d(1),
        fc1=nn.Conv2d(in_channels, hidden, 1),
        act=nn.ReLU(inplace=True),
        fc2=nn.Conv2d(hidden, out_channels, 1)))


class DMA(BaseModule):
    """Dynamic Multi-level Attention: expand conv, dilated depthwise levels, 1x1 conv, SE gate.

    Args:
        embed_dims (int): Channels C of the (B, C, H, W) input and output.
        expand_ratio (float, optional): The expand conv widens C to ``int(C * expand_ratio)``
            channels before the depthwise levels; None drops the expand conv. Defaults to 2.
        kernel_sizes (Sequence[int]): Kernel size of each level's depthwise conv (odd).
            Defaults to (3, 5, 7).
        dilations (Sequence[int]): Dilation of each level, one per kernel size.
            Defaults to (1, 2, 3).
        gate (str): ``'se'`` (channel vector from GAP of the input, applied after the 1x1 conv),
            or the ablations ``'level'`` (input-adaptive per-level weights before the 1x1 conv),
            ``'static'`` (learned per-level constants) and ``'none'``. Defaults to ``'se'``.
        gate_act (str): ``'sigmoid'``, or ``'softmax'`` over the levels (``'level'`` and
            ``'static'`` gates only). Defaults to ``'sigmoid'``.
        gate_reduction (int): Hidden width of the SE / level gate is
            ``max(in_channels // gate_reduction, 16)``. Defaults to 4.
        act_cfg (dict): Activation after the expand conv. Defaults to GELU.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmvit_hybrid.models.layers import DMA
        >>> dma = DMA(64)
        >>> tuple(dma(torch.rand(2, 64, 9, 13)).shape)
        (2, 64, 9, 13)
        >>> tuple(dma.gate_weights(torch.rand(2, 64, 9, 13)).shape)
        (2, 64, 1, 1)
    """
    gates = ('se', 'level', 'static', 'none')
    gate_acts = ('sigmoid', 'softmax')

    def __init__(self,
                 embed_dims: int,
                 expand_ratio: Optional[float] = 2.,
                 kernel_sizes: Sequence[int] = (3, 5, 7),
                 dilations: Sequence[int] = (1, 2, 3),
                 gate: str = 'se',
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
        if expand_ratio is not None and not (isinstance(expand_ratio, (int, float)) and expand_ratio > 0
                                             and int(embed_dims * expand_ratio) >= 1):
            raise ValueError(f'DMA: expand_ratio must be None (no expand conv) or a number > 0, '
                             f'got {expand_ratio!r}')
        if gate not in self.gates:
            raise ValueError(f'DMA: unknown gate {gate!r}; choose one of {list(self.gates)} '
                             "(the per-level gate of earlier versions is 'level')")
        if gate_act not in self.gate_acts:
            raise ValueError(f'DMA: unknown gate_act {gate_act!r}; choose one of {list(self.gate_acts)}')
        if gate_act == 'softmax' and gate not in ('level', 'static'):
            raise ValueError(f"DMA: gate_act='softmax' normalises per-level weights; gate={gate!r} has "
                             "none (use gate='level' or 'static')")
        if gate_act == 'softmax' and len(kernel_sizes) == 1:
            raise ValueError("DMA: gate_act='softmax' over a single level is the constant 1; "
                             "use gate_act='sigmoid' or more levels")
        if not isinstance(gate_reduction, int) or gate_reduction < 1:
            raise ValueError(f'DMA: gate_reduction must be an int >= 1, got {gate_reduction!r}')
        self.embed_dims = C = embed_dims
        self.expand_ratio = expand_ratio
        self.hidden_dims = E = C if expand_ratio is None else int(C * expand_ratio)
        self.kernel_sizes = kernel_sizes
        self.dilations = dilations
        self.num_levels = L = len(kernel_sizes)
        self.gate_mode = gate
        self.gate_act = gate_act

        if expand_ratio is None:
            self.expand = None
        else:
            self.expand = nn.Sequential(OrderedDict(conv=nn.Conv2d(C, E, 1), act=build_activation_layer(act_cfg)))
        self.levels = nn.ModuleList(
            nn.Conv2d(E, E, k, padding=d * (k - 1) // 2, dilation=d, groups=E)
            for k, d in zip(kernel_sizes, dilations))
        self.proj_out = nn.Conv2d(E, C, 1)
        if gate == 'se':
            self.se = _squeeze_excite(C, max(C // gate_reduction, 16), C)
        elif gate == 'level':
            self.level_gate = _squeeze_excite(E, max(E // gate_reduction, 16), L * E)
        elif gate == 'static':
            self.gate_logits = nn.Parameter(torch.zeros(L, E))

    def _level_weights(self, u: torch.Tensor) -> torch.Tensor:
        """Per-level, per-channel weights (B or 1, L, E, 1, 1) for the expanded input ``u``."""
        if self.gate_mode == 'level':
            # (B, E, H, W) -> (B, L*E, 1, 1) -> (B, L, E, 1, 1)
            logits = self.level_gate(u).reshape(u.shape[0], self.num_levels, self.hidden_dims, 1, 1)
        else:
            # (L, E) -> (1, L, E, 1, 1)
            logits = self.gate_logits.reshape(1, self.num_levels, self.hidden_dims, 1, 1)
        return logits.sigmoid() if self.gate_act == 'sigmoid' else logits.softmax(dim=1)

    def gate_weights(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """The gate's output for input ``x`` (B, C, H, W), for analysis and tests: the SE vector
        (B, C, 1, 1) for ``'se'``; the level weights (B, L, E, 1, 1) for ``'level'``,
        (1, L, E, 1, 1) for ``'static'``; None for ``'none'``."""
        if self.gate_mode == 'se':
            return self.se(x).sigmoid()
        if self.gate_mode == 'none':
            return None
        return self._level_weights(x if self.expand is None else self.expand(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        u = x if self.expand is None else self.expand(x)  # (B, E, H, W)
        if self.gate_mode in ('level', 'static'):
            weights = self._level_weights(u)
            fused = sum(weights[:, i] * level(u) for i, level in enumerate(self.levels))
        else:
            fused = sum(level(u) for level in self.levels)
        out = self.proj_out(fused)
        return self.se(x).sigmoid() * out if self.gate_mode == 'se' else out
