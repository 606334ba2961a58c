"""DMA with per-level gates in place of the SE vector, for ablations of DMFormer's token mixer.

Steps 1-4 of :class:`~mmvit_hybrid.models.layers.DMA` (expand conv, dilated depthwise levels,
fusion, 1x1 conv, with DMA's parameter names), the fusion weighted per level and channel *before*
the 1x1 conv: ``X' = sum_i a_i * DWConv_i(u)``. The gates (ours, none is in the paper):

* ``'level'`` (parameters ``level_gate``): input-adaptive weights in the style of SKNet's selective
  kernels, ``a = act(FC(ReLU(FC(GAP(u)))))`` of shape (B, L, E); ``gate_act='softmax'`` normalises
  them over the levels as SKNet does (over one level that is the constant 1);
* ``'static'`` (parameter ``gate_logits``, initialised to zero): the same weights as learned
  constants, ``a = act(gate_logits)`` of shape (L, E), the same for every input;
* ``'none'``: the plain sum, ``a_i = 1``.
"""
from typing import Optional

import torch
import torch.nn as nn

from mmvit_hybrid.registry import MODELS
from .dma import DMA, squeeze_excite


@MODELS.register_module()
class DMAAblation(DMA):
    """DMA with a per-level gate (``'level'``, ``'static'``) or none in place of the SE vector.

    Args:
        embed_dims (int): Channels C of the (B, C, H, W) input and output.
        gate (str): ``'level'``, ``'static'`` or ``'none'`` (see the module docstring).
            Defaults to ``'level'``.
        gate_act (str): ``'sigmoid'``, or ``'softmax'`` over the levels; unused by ``'none'``.
            Defaults to ``'sigmoid'``.
        gate_reduction (int): The ``'level'`` gate's hidden width is ``max(E // gate_reduction, 16)``
            for the E expanded channels. Defaults to 4.
        kwargs (dict): DMA's ``expand_ratio``, ``kernel_sizes``, ``dilations``, ``act_cfg`` and
            ``init_cfg``.
    """

    def __init__(self, embed_dims: int, gate: str = 'level', gate_act: str = 'sigmoid', gate_reduction: int = 4,
                 **kwargs):
        # an unknown value would otherwise run as another gate without a word
        if gate not in ('level', 'static', 'none'):
            raise ValueError(f"DMAAblation: unknown gate {gate!r}; choose 'level', 'static' or 'none'")
        if gate_act not in ('sigmoid', 'softmax'):
            raise ValueError(f"DMAAblation: unknown gate_act {gate_act!r}; choose 'sigmoid' or 'softmax'")
        super().__init__(embed_dims, gate_reduction=gate_reduction, **kwargs)
        self.gate, self.gate_act = gate, gate_act
        E, L = self.hidden_dims, len(self.levels)
        if gate == 'level':
            self.level_gate = squeeze_excite(E, max(E // gate_reduction, 16), L * E)
        elif gate == 'static':
            self.gate_logits = nn.Parameter(torch.zeros(L, E))

    def build_gate(self, gate_reduction: int):
        """No SE gate: ``__init__`` builds the per-level one once it knows ``gate``."""

    def level_weights(self, u: torch.Tensor) -> Optional[torch.Tensor]:
        """The weights ``a`` for the expanded input ``u`` (B, E, H, W): (B, L, E, 1, 1) for
        ``'level'``, (1, L, E, 1, 1) for ``'static'``, None for ``'none'``."""
        if self.gate == 'none':
            return None
        shape = (-1, len(self.levels), self.hidden_dims, 1, 1)
        logits = (self.level_gate(u) if self.gate == 'level' else self.gate_logits).reshape(shape)
        return logits.softmax(dim=1) if self.gate_act == 'softmax' else logits.sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        u = x if self.expand is None else self.expand(x)  # (B, E, H, W)
        fused = [level(u) for level in self.levels]
        weights = self.level_weights(u)
        if weights is not None:
            fused = [w * f for w, f in zip(weights.unbind(1), fused)]
        return self.proj_out(sum(fused))
