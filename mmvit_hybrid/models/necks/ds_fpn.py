"""DS-FPN: the dual-stream feature pyramid of DS-Net (arXiv 2105.14734).

The paper proposes an FPN "enhanced with the dual-stream design" and motivates it by the cost of
earlier context modules, which need "large extra memory and computation on high-resolution
feature maps". It publishes no code or layout, so this is this package's reconstruction; each
choice is an argument, and ``benchmarks/ds_fpn_cost.py`` measures each option against mmdet's FPN
(``configs/dsnet/README_dsfpn.md`` has the table and the rationale):

* It is mmdet's :class:`~mmdet.models.necks.FPN` (same arguments and layers: 1x1 laterals, top-down
  sum, 3x3 output convs, the same extra levels), so it replaces ``type='FPN'`` in any config. The
  forward is FPN's with one step added: dual-stream blocks (:class:`DualStreamBlock`, the DS-Net
  block: a depthwise-conv local stream, self-attention on a downsampled global stream,
  co-attention between them) enhance some levels.
* ``ds_levels``: which used backbone levels carry a block. Default: the two coarsest (P4 and P5 in
  Mask R-CNN). A block's cost grows with its level's area (its 1x1 convs and its local-to-global
  co-attention are per pixel), so the fine levels are where context costs most: the paper's point.
* ``position``: ``'lateral'`` (default) enhances the laterals *before* the top-down path, so the
  context of the enhanced coarse levels reaches every finer output through the top-down sums at
  no extra cost; ``'output'`` enhances after the 3x3 output convs (each block reaches only its own
  level).
* ``shared_global``: one global stream for all enhanced levels. The coarsest enhanced level's
  block computes it (self-attention on its 1/``global_strides`` grid); the other blocks skip their
  own and co-attend to it (:attr:`DualStreamBlock.external_global`).
* ``global_strides``: each level's global grid relative to the level; the default puts every
  level on the grid of the coarsest used level (P5, 1/32), so the attention cost stays linear in
  the image area.
* Extra levels (P6 by max-pooling, RetinaNet's strided convs) come from the enhanced outputs,
  exactly as mmdet's FPN computes them from its outputs.
* The block FFN is narrower than the backbone's (``mlp_ratio=2``); the blocks are initialised as
  in the backbone (:func:`init_dual_stream_weights`), not by FPN's Xavier ``init_cfg``.

``ds_levels=(0, 1, 2, 3), position='output'`` (with the default per-level global streams) is this
package's first design: it costs 2.6x FPN's FLOPs at 800x1344, most of it at the stride-4 level.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.necks import FPN

from mmvit_hybrid.registry import MODELS
from ..layers import DualStreamBlock
from ..layers.dual_stream import init_dual_stream_weights


@MODELS.register_module()
class DSFPN(FPN):
    """FPN with dual-stream blocks on some levels.

    Args:
        in_channels (list[int]): Channels of each backbone level.
        out_channels (int): Output channels of every level.
        num_outs (int): Number of output levels.
        ds_levels (Sequence[int]): Used backbone levels (0 = ``start_level``; negatives count from
            the coarsest) that carry a dual-stream block. Defaults to (-2, -1).
        position (str): ``'lateral'``: enhance the laterals before the top-down path;
            ``'output'``: enhance the outputs of the 3x3 convs. Defaults to ``'lateral'``.
        shared_global (bool): The coarsest enhanced level's global stream serves all enhanced
            levels. Defaults to False.
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
    positions = ('lateral', 'output')

    def __init__(self,
                 in_channels: List[int],
                 out_channels: int,
                 num_outs: int,
                 ds_levels: Sequence[int] = (-2, -1),
                 position: str = 'lateral',
                 shared_global: bool = False,
                 global_strides: Optional[Sequence[int]] = None,
                 num_heads: int = 4,
                 mlp_ratio: float = 2.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 block_norm_cfg: dict = dict(type='BN', requires_grad=True),
                 with_cp: bool = False,
                 **fpn_kwargs):
        super().__init__(in_channels, out_channels, num_outs, **fpn_kwargs)
        num_levels = self.backbone_end_level - self.start_level
        used = f'({num_levels}: levels {self.start_level}..{self.backbone_end_level - 1} of in_channels)'
        if global_strides is None:
            global_strides = [2**(num_levels - 1 - i) for i in range(num_levels)]
        if len(global_strides) != num_levels:
            raise ValueError(f'DSFPN: global_strides needs one entry per used backbone level {used}, '
                             f'got {tuple(global_strides)}')
        if not all(isinstance(i, int) and -num_levels <= i < num_levels for i in ds_levels):
            raise ValueError(f'DSFPN: ds_levels must index the used backbone levels {used} '
                             f'(0..{num_levels - 1} or negatives), got {tuple(ds_levels)}')
        levels = sorted({i % num_levels for i in ds_levels})
        if len(levels) != len(ds_levels):
            raise ValueError(f'DSFPN: duplicate ds_levels {tuple(ds_levels)}')
        if position not in self.positions:
            raise ValueError(f'DSFPN: unknown position {position!r}; choose one of {list(self.positions)}')
        if shared_global and not levels:
            raise ValueError('DSFPN: shared_global needs at least one level in ds_levels')
        self.ds_levels = levels
        self.position = position
        self.shared_global = shared_global
        self.global_strides = tuple(global_strides)
        # keyed by the level index; the coarsest block computes the shared global stream
        self.ds_blocks = nn.ModuleDict({
            str(i): DualStreamBlock(
                out_channels, num_heads, global_strides[i], mlp_ratio=mlp_ratio,
                attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, norm_cfg=block_norm_cfg,
                with_cp=with_cp, external_global=shared_global and i != levels[-1])
            for i in levels
        })

    def init_weights(self):
        """FPN's init (Xavier convs by default), then the backbone's init for the blocks."""
        super().init_weights()
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'):
            init_dual_stream_weights(self.ds_blocks)

    def enhance(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        """Run the blocks on their levels of ``feats`` (each (B, C, H_i, W_i)), coarsest first."""
        feats = list(feats)
        global_map = None  # (B, C/2, h, w), the shared global stream
        for i in reversed(self.ds_levels):
            block = self.ds_blocks[str(i)]
            feats[i], own_global = block.forward_with_global(feats[i], global_map if block.external_global else None)
            if self.shared_global and global_map is None:
                global_map = own_global
        return feats

    def forward(self, inputs: Tuple[torch.Tensor]) -> tuple:
        """mmdet 3.3 ``FPN.forward`` with :meth:`enhance` on the laterals or on the outputs."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'DSFPN got {len(inputs)} feature maps but in_channels has '
                             f'{len(self.in_channels)} entries; match the backbone out_indices')
        got = [x.shape[1] for x in inputs]
        if got != list(self.in_channels):
            raise ValueError(f'DSFPN in_channels={list(self.in_channels)} but the backbone gives {got} '
                             'channels; set neck.in_channels to the backbone out_channels')
        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        if self.position == 'lateral':
            laterals = self.enhance(laterals)
        num_levels = len(laterals)
        for i in range(num_levels - 1, 0, -1):  # top-down path
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up
        outs = [self.fpn_convs[i](laterals[i]) for i in range(num_levels)]
        if self.position == 'output':
            outs = self.enhance(outs)
        if self.num_outs > num_levels and not self.add_extra_convs:  # P6 by max-pooling
            for _ in range(self.num_outs - num_levels):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif self.num_outs > num_levels:  # strided convs (RetinaNet)
            source = dict(on_input=inputs[self.backbone_end_level - 1], on_lateral=laterals[-1],
                          on_output=outs[-1])[self.add_extra_convs]
            outs.append(self.fpn_convs[num_levels](source))
            for i in range(num_levels + 1, self.num_outs):
                outs.append(self.fpn_convs[i](F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]))
        return tuple(outs)
