"""DMA, the Dynamic Multi-level Attention token mixer of DMFormer (Wei et al., ICASSP 2023,
arXiv 2209.07738; MCA in the paper's v1 "ConvFormer"). No official code is public; the steps and
their sources (the abstract, a reading note of the paper, the v1 paper: ``configs/dmformer/README.md``
quotes each and lists every choice):

1. expand conv ``u = GELU(Conv1x1_{C -> rC}(x))`` (v1's "Expand Conv" before the depthwise convs);
   the GELU and ``r = 2`` are ours;
2. ``L`` levels of dilated depthwise convs on ``u`` (abstract: "multiple kernel sizes"; reading
   note: multi-scale *dilated* convolutions); kernels (3, 5, 7) and dilations (1, 2, 3) are ours;
3. fusion ``X' = sum_i DWConv_i(u)`` (ours: the sources say "fused" without the operator);
4. ``Conv1x1_{rC -> C}(X')`` (reading note; v1: back to C channels for the residual sum);
5. calibration by an SE vector from the mixer's *input* (reading note, its equations):
   ``Attn = Sigmoid(FC(ReLU(FC(GAP(x)))))``, ``Output = Attn * Conv1x1(X')``; the FCs are 1x1
   convs of hidden width ``max(C // gate_reduction, 16)`` (ours).

The other gates, for ablations, are :class:`~mmvit_hybrid.models.layers.DMAAblation`.
"""
from collections import OrderedDict
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmengine.model import BaseModule

from mmvit_hybrid.registry import MODELS


def squeeze_excite(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    """``FC(ReLU(FC(GAP(x))))`` with 1x1 convs as the FCs: (B, C_in, H, W) -> (B, C_out, 1, 1)."""
    return nn.Sequential(OrderedDict(pool=nn.AdaptiveAvgPool2d(1), fc1=nn.Conv2d(in_channels, hidden, 1),
                                     act=nn.ReLU(inplace=True), fc2=nn.Conv2d(hidden, out_channels, 1)))


@MODELS.register_module()
class DMA(BaseModule):
    """Dynamic Multi-level Attention: expand conv, dilated depthwise levels, 1x1 conv, SE gate.

    Args:
        embed_dims (int): Channels C of the (B, C, H, W) input and output.
        expand_ratio (float, optional): The expand conv widens C to ``int(C * expand_ratio)``;
            None drops it (``u = x``). Defaults to 2.
        kernel_sizes (Sequence[int]): Odd kernel size of each level. Defaults to (3, 5, 7).
        dilations (Sequence[int]): Dilation of each level. Defaults to (1, 2, 3).
        gate_reduction (int): The SE hidden width is ``max(C // gate_reduction, 16)``. Defaults to 4.
        act_cfg (dict): Activation after the expand conv. Defaults to GELU.
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmvit_hybrid.models.layers import DMA
        >>> dma = DMA(64)
        >>> tuple(dma(torch.rand(2, 64, 9, 13)).shape)
        (2, 64, 9, 13)
    """

    def __init__(self,
                 embed_dims: int,
                 expand_ratio: Optional[float] = 2.,
                 kernel_sizes: Sequence[int] = (3, 5, 7),
                 dilations: Sequence[int] = (1, 2, 3),
                 gate_reduction: int = 4,
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        # zip would drop unmatched levels, and an even kernel has no same padding
        if not kernel_sizes or len(kernel_sizes) != len(dilations) or any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f'DMA needs one odd kernel size per dilation, got kernel_sizes={kernel_sizes}, '
                             f'dilations={dilations}')
        self.embed_dims = C = embed_dims
        self.hidden_dims = E = C if expand_ratio is None else int(C * expand_ratio)
        self.expand = None if expand_ratio is None else nn.Sequential(OrderedDict(
            conv=nn.Conv2d(C, E, 1), act=build_activation_layer(act_cfg)))
        self.levels = nn.ModuleList(nn.Conv2d(E, E, k, padding=d * (k - 1) // 2, dilation=d, groups=E)
                                    for k, d in zip(kernel_sizes, dilations))
        self.proj_out = nn.Conv2d(E, C, 1)
        self.build_gate(gate_reduction)

    def build_gate(self, gate_reduction: int):
        """Step 5's SE gate (:class:`DMAAblation` replaces it)."""
        self.se = squeeze_excite(self.embed_dims, max(self.embed_dims // gate_reduction, 16), self.embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        u = x if self.expand is None else self.expand(x)  # (B, E, H, W)
        return self.se(x).sigmoid() * self.proj_out(sum(level(u) for level in self.levels))
