"""DS-FPN: the dual-stream feature pyramid of DS-Net (arXiv 2105.14734).

The paper proposes an FPN "enhanced with the dual-stream design" and motivates it by the cost of
context modules that need "large extra memory and computation on high-resolution feature maps".
It publishes no code or layout, so this is this package's reconstruction; ``benchmarks/ds_fpn_cost.py``
measures it against mmdet's FPN (``configs/dsnet/README_dsfpn.md`` has the table and the rationale):

* It is mmdet's :class:`~mmdet.models.necks.FPN` (same arguments, layers and forward), so it
  replaces ``type='FPN'`` in any config. A :class:`DualStreamBlock` (the DS-Net block) follows the
  lateral conv of each level in ``ds_levels``, as a forward hook on that conv: the enhanced context
  reaches every finer output through FPN's top-down sums, and the extra levels come from the
  enhanced maps as FPN computes them.
* ``ds_levels`` defaults to the two coarsest levels (P4, P5 in Mask R-CNN): a block's cost grows
  with its level's area, and the fine levels are where context costs most, the paper's point.
  Measured at 800x1344: 1.11x FPN's FLOPs; blocks on all four levels cost 2.66x.
* ``global_strides`` defaults to the grid of the coarsest used level (1/32) for every level, so
  the attention cost stays linear in the image area.
* The block FFN is narrower than the backbone's (``mlp_ratio=2``); the blocks are initialised as in
  the backbone (:func:`init_dual_stream_weights`), not by FPN's Xavier ``init_cfg``.
"""
from functools import partial
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmdet.models.necks import FPN

from mmvit_hybrid.registry import MODELS
from ..layers import DualStreamBlock
from ..layers.dual_stream import init_dual_stream_weights


@MODELS.register_module()
class DSFPN(FPN):
    """mmdet's FPN with a dual-stream block after the lateral conv of some levels.

    Args:
        in_channels (list[int]): Channels of each backbone level.
        out_channels (int): Output channels of every level.
        num_outs (int): Number of output levels.
        ds_levels (Sequence[int]): Used backbone levels (0 = ``start_level``; negatives count from
            the coarsest) whose lateral carries a dual-stream block. Defaults to (-2, -1).
        global_strides (Sequence[int], optional): Global-stream downsampling of each used backbone
            level (one entry per level, also for levels without a block). Defaults to None:
            ``2 ** (num_levels - 1 - i)``, the coarsest level's grid for every level.
        num_heads (int): Attention heads of the blocks; must divide ``out_channels / 2``. Defaults to 4.
        mlp_ratio (float): FFN expansion of the blocks. Defaults to 2.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth of the blocks. Defaults to 0.
        block_norm_cfg (dict): Norm inside the blocks. Defaults to BN.
        with_cp (bool): Gradient checkpointing of the blocks. Defaults to False.
        **fpn_kwargs: Every other argument of mmdet's ``FPN`` (``start_level``, ``end_level``,
            ``add_extra_convs``, ``norm_cfg``, ``upsample_cfg``, ``init_cfg``, ...).
    """

    def __init__(self,
                 in_channels: List[int],
                 out_channels: int,
                 num_outs: int,
                 ds_levels: Sequence[int] = (-2, -1),
                 global_strides: Optional[Sequence[int]] = None,
                 num_heads: int = 4,
                 mlp_ratio: float = 2.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 block_norm_cfg: dict = dict(type='BN', requires_grad=True),
                 with_cp: bool = False,
                 **fpn_kwargs):
        super().__init__(in_channels, out_channels, num_outs, **fpn_kwargs)
        num_levels = len(self.lateral_convs)
        used = f'({num_levels}: levels {self.start_level}..{self.backbone_end_level - 1} of in_channels)'
        if global_strides is None:
            global_strides = [2**(num_levels - 1 - i) for i in range(num_levels)]
        if len(global_strides) != num_levels:
            raise ValueError(f'DSFPN: global_strides needs one entry per used backbone level {used}, '
                             f'got {tuple(global_strides)}')
        levels = sorted({i % num_levels for i in ds_levels if -num_levels <= i < num_levels})
        if len(levels) != len(ds_levels):
            raise ValueError(f'DSFPN: ds_levels must be distinct indices of the used backbone levels {used} '
                             f'(0..{num_levels - 1} or negatives), got {tuple(ds_levels)}')
        self.ds_levels = levels
        self.global_strides = tuple(global_strides)
        self.ds_blocks = nn.ModuleDict({
            str(i): DualStreamBlock(
                out_channels, num_heads, global_strides[i], mlp_ratio=mlp_ratio,
                attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, norm_cfg=block_norm_cfg,
                with_cp=with_cp)
            for i in levels
        })
        for i in levels:  # a bound method, not a closure: a deepcopy (EMA) hooks its own blocks
            self.lateral_convs[i].register_forward_hook(partial(self._enhance_lateral, str(i)))

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple:
        """FPN's forward; a wrong number of maps is named here (FPN's own assert has no message)."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'DSFPN got {len(inputs)} feature maps but in_channels has '
                             f'{len(self.in_channels)} entries; match the backbone out_indices')
        return super().forward(inputs)

    def _enhance_lateral(self, level: str, lateral_conv: nn.Module, args: tuple,
                         lateral: torch.Tensor) -> torch.Tensor:
        """Forward hook of a lateral conv: its (B, C, H_i, W_i) output through the level's block."""
        return self.ds_blocks[level](lateral)

    def init_weights(self):
        """FPN's init (Xavier convs by default), then the backbone's init for the blocks."""
        super().init_weights()
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'):
            init_dual_stream_weights(self.ds_blocks)
