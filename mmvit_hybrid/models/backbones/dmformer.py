"""DMFormer: Closing the Gap Between CNN and Vision Transformers (Wei et al., ICASSP 2023,
arXiv 2209.07738; v1 of the paper is titled "ConvFormer" and calls the token mixer MCA).

No official code, weights or variant table are public. What the sources state: a vision-transformer (MetaFormer)
layout with the self-attention replaced by DMA (expand conv, dilated depthwise convs of several
kernel sizes, 1x1 conv, calibrated by an SE-style gate: :class:`~mmvit_hybrid.models.layers.DMA`
gives the formula and the source of each step); four stages; a stem of a 7x7 stride-2 conv, a 3x3
conv and a 2x2 stride-2 patch conv; v1 reports ConvFormer-S "with a smaller model size" than
Swin-T. Everything else below is **this package's reconstruction**:

* Block (MetaFormer, pre-norm): ``x = x + DropPath(gamma_1 * DMA(Norm(x)))``,
  ``x = x + DropPath(gamma_2 * MLP(Norm(x)))``; layer scale ``gamma`` initialised to 1e-5
  (PoolFormer); MLP = Conv1x1 (ratio 4), GELU, Conv1x1.
* Token mixer (``mixer_cfg``): DMA with expand ratio 2, levels with kernel sizes (3, 5, 7) and
  dilations (1, 2, 3), the SE gate with hidden width max(C / 4, 16); the ablation configs name
  :class:`~mmvit_hybrid.models.layers.DMAAblation` (per-level gates) or other DMA arguments.
* Norm: BatchNorm everywhere (stem, the two pre-norms of every block, the stage output norm),
  which suits the all-convolutional mixer and folds into the convs at inference;
  ``norm_cfg`` swaps it (e.g. SyncBN).
* Stem (stride 4): ConvBNGELU 7x7 s2 (C1/2 channels), ConvBNGELU 3x3 (C1/2), Conv 2x2 s2 (C1).
  Downsampling between stages: Conv 2x2 s2 (non-overlapping patches, as the stem's last layer).
* Every stage ends with a norm whose output is both the stage's feature and the next stage's
  input (VAN's layout), so the dense-prediction features are normalised and the parameter set
  does not depend on ``out_indices`` (a classification checkpoint loads strictly into a detector).
* Variants: widths of PoolFormer-S/VAN-B2 (S), Swin-S/ConvNeXt-S-like (M) and ConvNeXt-B/Swin-B
  (L); Swin/ConvNeXt-style depths with most blocks at stride 16, chosen so that S stays below
  Swin-T's 28M parameters at about its 4.5G FLOPs, M and L in the Swin-S and Swin-B classes:

  ====  =================  =============  ==============================  ====================
  arch  embed_dims         depths         params (1000-class head)        GMACs @224
  ====  =================  =============  ==============================  ====================
  s     64-128-320-512     2-3-11-3       27.06M                          4.42
  m     96-192-384-768     3-3-12-3       49.79M                          8.26
  l     128-256-512-1024   3-3-12-3       87.52M                          14.47
  ====  =================  =============  ==============================  ====================

  Measured with :func:`mmvit_hybrid.utils.count_flops` (``FlopCounterMode``, MACs = FLOPs / 2) on
  the backbone plus global pooling and a C4 x 1000 linear head; ``tests/test_dmformer.py`` checks
  them against an analytic count from this table.
* Stochastic depth grows linearly over all blocks to ``drop_path_rate``; init is truncated normal
  (std 0.02) for convs and linears, unit/zero norms (PoolFormer/ConvNeXt).
* Any input of at least 32x32 works: the 7x7 stride-2 conv rounds up, every 2x2 patch conv rounds
  down (333x517 gives 83x129, 41x64, 20x32, 10x16).
"""
import re
from collections import OrderedDict
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_init
from torch.nn.modules.batchnorm import _BatchNorm

from mmvit_hybrid.registry import MODELS
from .base_backbone import HybridBackbone
from .layer_depth import stage_layer_depth, strip_prefix


class DMFormerBlock(BaseModule):
    """MetaFormer block with DMA as the token mixer and a pointwise-conv MLP.

    Args:
        embed_dims (int): Channels C of the (B, C, H, W) input and output.
        mlp_ratio (float): MLP hidden width over C. Defaults to 4.
        drop_path_rate (float): Stochastic depth of both residual branches. Defaults to 0.
        layer_scale_init_value (float): Initial value of the per-channel residual scales;
            0 disables layer scale. Defaults to 1e-5.
        mixer_cfg (dict): The token mixer's config, built from ``MODELS`` with ``embed_dims=C``.
            Defaults to ``dict(type='DMA')``.
        norm_cfg (dict): Norm of the two pre-norms. Defaults to BN.
        act_cfg (dict): Activation of the MLP, and the mixer's unless ``mixer_cfg`` sets one.
            Defaults to GELU.
        with_cp (bool): Recompute the block in backward to save memory. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 mlp_ratio: float = 4.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-5,
                 mixer_cfg: dict = dict(type='DMA'),
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='GELU'),
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        C = embed_dims
        hidden = int(C * mlp_ratio)
        self.norm1 = build_norm_layer(norm_cfg, C)[1]
        self.mixer = MODELS.build(dict(mixer_cfg, embed_dims=C), default_args=dict(act_cfg=act_cfg))
        self.norm2 = build_norm_layer(norm_cfg, C)[1]
        self.mlp = nn.Sequential(OrderedDict(
            fc1=nn.Conv2d(C, hidden, 1), act=build_activation_layer(act_cfg), fc2=nn.Conv2d(hidden, C, 1)))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        if layer_scale_init_value > 0:
            # 1-D, so optimizer configs treat them as flat parameters (flat_decay_mult)
            self.gamma1 = nn.Parameter(torch.full((C, ), float(layer_scale_init_value)))
            self.gamma2 = nn.Parameter(torch.full((C, ), float(layer_scale_init_value)))
        else:
            self.gamma1 = self.gamma2 = None

    def _scale(self, x: torch.Tensor, gamma) -> torch.Tensor:
        return x if gamma is None else gamma.view(-1, 1, 1) * x  # (C, ) -> (C, 1, 1), over (B, C, H, W)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self._scale(self.mixer(self.norm1(x)), self.gamma1))
        return x + self.drop_path(self._scale(self.mlp(self.norm2(x)), self.gamma2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


@MODELS.register_module()
class DMFormer(HybridBackbone):
    """DMFormer backbone: a four-stage MetaFormer with DMA token mixers at strides 4/8/16/32.

    This package's reconstruction of arXiv 2209.07738 (no official code); see the module
    docstring for every design choice and the measured size of each arch.

    Args:
        arch (str | dict): ``'s'``/``'m'``/``'l'`` (or ``'small'``/``'medium'``/``'large'``), or a
            dict with ``embed_dims`` and ``depths`` (one entry per stage).
        in_channels (int): Input image channels. Defaults to 3.
        mixer_cfg (dict): Every block's token mixer, built from ``MODELS`` with the stage's
            ``embed_dims``: :class:`~mmvit_hybrid.models.layers.DMA` and its arguments, or e.g.
            ``dict(type='DMAAblation', gate='level')``. Defaults to ``dict(type='DMA')``.
        mlp_ratio (float): MLP expansion. Defaults to 4.
        layer_scale_init_value (float): Initial residual scale; 0 disables layer scale.
            Defaults to 1e-5.
        out_indices (Sequence[int] | int): Stages to return. Defaults to (0, 1, 2, 3).
        frozen_stages (int): -1 freezes nothing; 0 the stem; k the stem and stages 1..k.
            Defaults to -1.
        norm_eval (bool): Keep BatchNorms in eval mode during training. Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        drop_path_rate (float): Stochastic depth, linear over all blocks. Defaults to 0.1.
        norm_cfg (dict): Norm of the stem, the blocks and the stage outputs. Defaults to BN.
        act_cfg (dict): Activation of the stem, the MLPs and the mixers (unless ``mixer_cfg`` sets
            one). Defaults to GELU.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.

    Examples:
        >>> import torch
        >>> from mmvit_hybrid.models import DMFormer
        >>> model = DMFormer(arch='s').eval()
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 224, 224))]
        [(1, 64, 56, 56), (1, 128, 28, 28), (1, 320, 14, 14), (1, 512, 7, 7)]
    """
    arch_keys = ('embed_dims', 'depths')
    arch_zoo = {
        **dict.fromkeys(['s', 'small'], dict(embed_dims=(64, 128, 320, 512), depths=(2, 3, 11, 3))),
        **dict.fromkeys(['m', 'medium'], dict(embed_dims=(96, 192, 384, 768), depths=(3, 3, 12, 3))),
        **dict.fromkeys(['l', 'large'], dict(embed_dims=(128, 256, 512, 1024), depths=(3, 3, 12, 3))),
    }
    min_input_size = 32
    converter_hint = ("no published weights; this package's own ImageNet classifier checkpoint with "
                      'python tools/model_converters/extract_backbone.py SRC DST (the backbone-only file)')

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 in_channels: int = 3,
                 mixer_cfg: dict = dict(type='DMA'),
                 mlp_ratio: float = 4.,
                 layer_scale_init_value: float = 1e-5,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.1,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval, drop_path_rate, init_cfg)
        embed_dims = tuple(self.arch_settings['embed_dims'])
        depths = tuple(self.arch_settings['depths'])
        if not mlp_ratio > 0:
            raise ValueError(f'DMFormer: mlp_ratio must be > 0, got {mlp_ratio}')
        if embed_dims[0] < 2:
            raise ValueError(f'DMFormer: embed_dims[0] must be >= 2 (the stem has half of it), got {embed_dims[0]}')
        self.embed_dims = embed_dims
        self.depths = depths
        self.out_channels = [embed_dims[i] for i in self.out_indices]
        self.out_strides = [4 * 2**i for i in self.out_indices]

        stem_channels = embed_dims[0] // 2
        stem = nn.Sequential(OrderedDict(
            conv1=ConvModule(in_channels, stem_channels, 7, stride=2, padding=3,
                             norm_cfg=norm_cfg, act_cfg=act_cfg),
            conv2=ConvModule(stem_channels, stem_channels, 3, padding=1,
                             norm_cfg=norm_cfg, act_cfg=act_cfg),
            patch=nn.Conv2d(stem_channels, embed_dims[0], 2, stride=2)))

        drop_path_rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.stages = nn.ModuleList()
        for i, (dims, depth) in enumerate(zip(embed_dims, depths)):
            first_block = sum(depths[:i])
            blocks = [
                DMFormerBlock(
                    dims, mlp_ratio=mlp_ratio, drop_path_rate=drop_path_rates[first_block + j],
                    layer_scale_init_value=layer_scale_init_value, mixer_cfg=mixer_cfg,
                    norm_cfg=norm_cfg, act_cfg=act_cfg, with_cp=with_cp) for j in range(depth)
            ]
            # stage 0 is downsampled by the stem, later stages by a 2x2 stride-2 patch conv
            downsample = stem if i == 0 else nn.Conv2d(embed_dims[i - 1], dims, 2, stride=2)
            self.stages.append(nn.Sequential(OrderedDict(
                downsample=downsample,
                blocks=nn.Sequential(*blocks),
                norm=build_norm_layer(norm_cfg, dims)[1])))
        self._freeze_stages()

    def frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        return [self.stages[0].downsample] + list(self.stages[:self.frozen_stages])

    @classmethod
    def weights_source(cls, filename, folder):
        """``dmformer_{s,m,l}_in1k_backbone.pth``: the backbone of this package's own ImageNet run (no
        published weights)."""
        m = re.fullmatch(r'dmformer_(?P<a>[sml])_in1k_backbone\.pth', filename)
        if m is None:
            return None
        return m['a'], (f'python tools/train.py configs/dmformer/dmformer_{m["a"]}_in1k.py, then python '
                        f'tools/model_converters/extract_backbone.py work_dirs/dmformer_{m["a"]}_in1k/epoch_300.pth '
                        f'{folder}/{filename}')

    def get_layer_depth(self, param_name: str, prefix: str = '', decay_type: str = 'layer_wise') -> Tuple[int, int]:
        """``(layer_id, num_layers)`` of a parameter for layer-wise lr decay (mmpretrain's
        ``get_layer_depth`` interface; the rate is ``decay ** (num_layers - layer_id - 1)``).

        The grouping is timm's ConvNeXt ``group_matcher`` (the same ``stages.i.downsample`` /
        ``stages.i.blocks.j`` layout; :func:`~.layer_depth.stage_layer_depth`): the stem 0; one
        id per block (``'layer_wise'``) or per stage (``'stage_wise'``), a stage's output norm with
        its last block; parameters outside ``prefix`` (neck, heads) the last id, the full lr.

        Args:
            param_name (str): Parameter name, e.g. ``'backbone.stages.2.blocks.3.gamma1'``.
            prefix (str): The backbone's prefix in ``param_name``. Defaults to ''.
            decay_type (str): ``'layer_wise'`` or ``'stage_wise'``. Defaults to ``'layer_wise'``.
        """
        return stage_layer_depth(strip_prefix(param_name, prefix), self.depths, decay_type)

    def default_init_weights(self):
        """Truncated normal (std 0.02) convs and linears with zero biases, unit/zero norms."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                trunc_normal_init(module, std=.02, bias=0.)
            elif isinstance(module, (_BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                constant_init(module, val=1., bias=0.)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C_in, H, W) -> tuple of (B, embed_dims[i], ~H / 2^(i+2), ~W / 2^(i+2)) for out_indices."""
        self.check_input(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
