"""DS-FPN: the dual-stream feature pyramid of DS-Net (arXiv 2105.14734).

The paper proposes an FPN "enhanced with the dual-stream design" for dense prediction but
publishes no code or layout, so this is this package's reconstruction:

* It is mmdet's :class:`~mmdet.models.necks.FPN` unchanged (1x1 laterals, top-down nearest
  upsampling and sum, 3x3 output convs, the same extra levels), so it is a drop-in replacement
  with the same arguments in Mask R-CNN, RetinaNet, or any other FPN config.
* After the 3x3 output conv of every backbone level, one :class:`DualStreamBlock` (the DS-Net
  block: a depthwise-conv local stream, self-attention on a downsampled global stream, and
  bidirectional co-attention between them, fused by a 1x1 conv) enhances that level with local
  detail and global context. ``global_strides`` sets each level's global grid relative to the
  level; the default (8, 4, 2, 1) puts every level's global stream on the 1/32 grid, as the
  backbone does in stages 1-3, so the attention cost stays linear in the image area.
* Extra levels (e.g. P6 by max-pooling P5, or RetinaNet's strided convs) are computed from the
  enhanced outputs exactly as mmdet's FPN computes them from its outputs.
* The FFN of the neck blocks is narrower than the backbone's (``mlp_ratio=2``) because it runs at
  256 channels on the stride-4 level.

Blocks are stored next to the conv they follow (``fpn_convs.i.conv`` / ``fpn_convs.i.dual_stream``).
"""
from collections import OrderedDict
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.models.necks import FPN

from mmvit_hybrid.registry import MODELS
from ..layers import DualStreamBlock


@MODELS.register_module()
class DSFPN(FPN):
    """FPN whose backbone levels are enhanced with dual-stream blocks.

    Args:
        in_channels (list[int]): Channels of each backbone level.
        out_channels (int): Output channels of every level.
        num_outs (int): Number of output levels.
        global_strides (Sequence[int]): Global-stream downsampling for each used backbone level
            (levels ``start_level`` to ``end_level``). Defaults to (8, 4, 2, 1): strides 4-32 -> 1/32.
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
                 global_strides: Sequence[int] = (8, 4, 2, 1),
                 num_heads: int = 4,
                 mlp_ratio: float = 2.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 block_norm_cfg: dict = dict(type='BN', requires_grad=True),
                 with_cp: bool = False,
                 **fpn_kwargs):
        super().__init__(in_channels, out_channels, num_outs, **fpn_kwargs)
        num_levels = self.backbone_end_level - self.start_level
        if len(global_strides) != num_levels:
            raise ValueError(
                f'DSFPN: global_strides needs one entry per used backbone level ({num_levels}: levels '
                f'{self.start_level}..{self.backbone_end_level - 1}), got {tuple(global_strides)}')
        for i in range(num_levels):
            self.fpn_convs[i] = nn.Sequential(OrderedDict(
                conv=self.fpn_convs[i],
                dual_stream=DualStreamBlock(
                    out_channels, num_heads, global_strides[i], mlp_ratio=mlp_ratio,
                    attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
                    norm_cfg=block_norm_cfg, with_cp=with_cp)))

    def forward(self, inputs: Tuple[torch.Tensor]) -> tuple:
        """Check the inputs against ``in_channels``, then run mmdet's FPN forward."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'DSFPN got {len(inputs)} feature maps but in_channels has '
                             f'{len(self.in_channels)} entries; match the backbone out_indices')
        got = [x.shape[1] for x in inputs]
        if got != list(self.in_channels):
            raise ValueError(f'DSFPN in_channels={list(self.in_channels)} but the backbone gives {got} '
                             'channels; set neck.in_channels to the backbone out_channels')
        return super().forward(inputs)
