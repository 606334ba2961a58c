"""One tiny model per backbone, for the contract every backbone of this package keeps
(tests/test_backbone_contract.py). A new backbone gets the whole contract by adding a row.

Each row is the smallest model that still has every part of its family: one block per stage,
at least one BatchNorm (for ``norm_eval``), every kind of block (BoTNet's c5 block attends), and
no dropout or stochastic depth, so that two forwards of the same weights are equal."""
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from mmvit_hybrid.models import VOLO, BoTNet, DMFormer, DSNet

#: output strides of stages 0-3: every row returns a stride-4/8/16/32 pyramid
STRIDES = (4, 8, 16, 32)


@dataclass(frozen=True)
class TinyBackbone:
    cls: type
    #: constructor keyword arguments of the tiny model
    cfg: dict
    #: output channels of stages 0-3 (from the paper's widths for fixed-width families)
    channels: Tuple[int, ...]
    #: smallest input H and W (an input one pixel smaller raises); None: any size
    min_size: Optional[int]
    #: parameter-name prefix -> stage that ``frozen_stages`` freezes it with: -1 the stem (frozen
    #: from ``frozen_stages=0``), k stage k (frozen from ``frozen_stages=k + 1``), None never;
    #: the longest matching prefix wins, and every parameter must match one
    stage_of: Dict[str, Optional[int]]
    #: blocks that ``with_cp`` checkpoints in one forward
    num_blocks: int = 4
    #: arguments with one entry per stage in ``out_indices``, selected along with it
    per_out_index: Tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.cls.__name__

    def config(self, **overrides) -> dict:
        """The tiny model's keyword arguments with ``overrides``."""
        cfg = dict(self.cfg, **overrides)
        if 'out_indices' in overrides:
            stages = sorted(i % 4 for i in overrides['out_indices'])  # the order of the outputs
            cfg.update({k: [self.cfg[k][i] for i in stages] for k in self.per_out_index})
        return cfg

    def build(self, **overrides):
        return self.cls(**self.config(**overrides))

    def stage(self, name: str) -> Optional[int]:
        """The ``frozen_stages`` stage of a parameter or module ``name`` (KeyError if none)."""
        matches = [p for p in self.stage_of if name.startswith(p) or (name + '.').startswith(p)]
        if not matches:
            raise KeyError(name)
        return self.stage_of[max(matches, key=len)]


def _stages(fmt: str, first: int = 0) -> dict:
    """``{fmt.format(first + k): k}`` for stages k = 0-3."""
    return {fmt.format(first + k): k for k in range(4)}


TINY_BACKBONES = [
    TinyBackbone(
        DSNet, dict(arch=dict(embed_dims=(16, 32, 32, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 2)),
                    drop_path_rate=0., attn_drop_rate=0.),
        channels=(16, 32, 32, 32), min_size=32,
        stage_of={'stages.0.downsample.': -1, **_stages('stages.{}.'), 'norm.': 3}),
    TinyBackbone(
        VOLO, dict(arch=dict(depths=(1, 1, 1, 1), embed_dims=(16, 32, 32, 32), num_heads=(2, 4, 4, 4), mlp_ratio=2,
                             stem_channels=8),
                   img_size=64, out_strides=STRIDES),
        channels=(16, 32, 32, 32), min_size=16, per_out_index=('out_strides', ),
        # the downsampling conv and the position embedding come before stage 1's blocks
        stage_of={'patch_embed.': -1, **_stages('stages.{}.'), **_stages('out_norms.{}.'), 'downsample.': 1,
                  'pos_embed': 1, 'resamplers.': None}),
    TinyBackbone(
        DMFormer, dict(arch=dict(embed_dims=(16, 32, 32, 32), depths=(1, 1, 1, 1)), drop_path_rate=0.),
        channels=(16, 32, 32, 32), min_size=32,
        stage_of={'stages.0.downsample.': -1, **_stages('stages.{}.')}),
    TinyBackbone(
        BoTNet, dict(arch=dict(depths=(1, 1, 1, 1), strides=(1, 2, 2, 2)), num_attn_blocks=1, img_size=64),
        channels=(256, 512, 1024, 2048), min_size=None,  # ResNet-50's widths: fixed in every arch
        stage_of={'conv1.': -1, 'bn1.': -1, **_stages('layer{}.', first=1)}),
]


def tiny_backbone(name: str) -> TinyBackbone:
    """The row of the backbone class ``name`` (e.g. ``'VOLO'``)."""
    return {row.name: row for row in TINY_BACKBONES}[name]
