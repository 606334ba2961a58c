"""DS-Net: Dual-stream Network for Visual Recognition (Mao et al., NeurIPS 2021, arXiv 2105.14734).

The official repository (gaopengcuhk/DSNet) holds no code. The design here follows the paper and,
where they are more specific, the public implementations that carry the same model code
(SteveTsui/DS-Net ``models.py``, PaddleClas ``dsnet.py``), so that their weights map one to one:

* Non-overlapping patch embeddings (4x4 stride 4, then 2x2 stride 2) without norm; no absolute
  position embedding, a 3x3 depthwise conditional position encoding in every block.
* The global stream is resized to ``(H // s, W // s)`` with ``global_strides = (8, 4, 2, 2)``. The
  paper text puts the global stream at 1/32 of the input; in stage 4 the reference code makes it
  1/64 (7x7 -> 3x3 at 224). We follow the reference code (the grids never drop below 1x1, so any
  input of at least 32x32 works).
* Attention-probability dropout 0.1 in every attention (hard-coded in the reference).
* A BatchNorm on the stage-4 output (the reference's final ``norm``), applied whenever stage 4 is
  returned; a classifier adds global pooling and a linear head on top.
* Stochastic depth: ``drop_path_schedule='linear'`` (default) rises linearly over all blocks, from 0
  to ``drop_path_rate`` at the last block (DeiT/Swin/PVT's rule). ``'per_stage'`` is the reference
  code's schedule: it builds the same linear list but indexes it with the in-stage block index
  (``dpr[i]`` in every stage of ``MixVisionTransformer``), so the rate restarts at 0 in each stage
  and block ``j`` of any stage gets ``drop_path_rate * j / (sum(depths) - 1)`` (DS-Net-T at 0.1:
  at most 0.0375, stage 4 none). Why linear is the default, and the ImageNet configs use
  ``'per_stage'``: configs/dsnet/README.md.
* The reference asserts a fixed input size; that assert is not here: any size works.
"""
import re
from collections import OrderedDict
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model.weight_init import constant_init, trunc_normal_init

from mmvit_hybrid.registry import MODELS
from ..layers import DualStreamBlock
from .base_backbone import HybridBackbone
from .layer_depth import stage_layer_depth, strip_prefix


@MODELS.register_module()
class DSNet(HybridBackbone):
    """DS-Net backbone: four stages of dual-stream blocks at strides 4/8/16/32.

    Args:
        arch (str | dict): ``'tiny'``/``'small'``/``'base'`` (or ``'t'``/``'s'``/``'b'``), or a dict
            with ``embed_dims``, ``depths`` and ``num_heads`` (one entry per stage).
        in_channels (int): Input image channels. Defaults to 3.
        global_strides (Sequence[int]): Per-stage downsampling of the global stream relative to
            the stage's feature map. Defaults to (8, 4, 2, 2), as the reference code.
        mlp_ratio (float): FFN expansion. Defaults to 4.
        out_indices (Sequence[int]): Stages to return. Defaults to (0, 1, 2, 3).
        frozen_stages (int): -1 freezes nothing; 0 the stem (the first patch embedding); k the stem
            and stages 1..k. Defaults to -1.
        norm_eval (bool): Keep BatchNorms in eval mode during training. Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        drop_path_rate (float): Stochastic depth rate of the last block. Defaults to 0.1.
        drop_path_schedule (str): ``'linear'`` over all blocks, or ``'per_stage'``: the reference
            code's schedule, restarting at 0 in every stage (see the module docstring).
            Defaults to ``'linear'``.
        attn_drop_rate (float): Attention-probability dropout. Defaults to 0.1.
        norm_cfg (dict): Norm of the convolutional layers. Defaults to BN.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.

    Examples:
        >>> import torch
        >>> model = DSNet(arch='tiny').eval()
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 224, 224))]
        [(1, 64, 56, 56), (1, 128, 28, 28), (1, 320, 14, 14), (1, 512, 7, 7)]
    """
    arch_keys = ('embed_dims', 'depths', 'num_heads')
    _widths = dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8))
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], dict(depths=(2, 2, 4, 1), **_widths)),
        **dict.fromkeys(['s', 'small'], dict(depths=(3, 4, 8, 3), **_widths)),
        **dict.fromkeys(['b', 'base'], dict(depths=(3, 4, 28, 3), **_widths)),
    }
    min_input_size = 32
    drop_path_schedules = ('linear', 'per_stage')
    converter_hint = ('PaddleClas DSNet_*.pdparams or SteveTsui/DS-Net .pth weights with '
                      'python tools/model_converters/dsnet_to_mmvit.py SRC DST (the backbone-only file is '
                      'DST with _backbone before the suffix)')
    third_party_format = (
        'a SteveTsui/DS-Net (DeiT layout) or PaddleClas DSNet checkpoint',
        'python tools/model_converters/dsnet_to_mmvit.py SRC DST, then use DST with a DS-Net classifier '
        'config (load_from / tools/test.py) or DST with _backbone before the suffix in a det/seg config '
        '(init_cfg=dict(type="Pretrained", checkpoint=..., prefix="backbone."))')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 global_strides: Sequence[int] = (8, 4, 2, 2),
                 mlp_ratio: float = 4.,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.1,
                 drop_path_schedule: str = 'linear',
                 attn_drop_rate: float = 0.1,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval, drop_path_rate, init_cfg)
        embed_dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        num_heads = self.arch_settings['num_heads']
        if len(global_strides) != self.num_stages:
            raise ValueError(f'DSNet: global_strides needs one entry per stage ({self.num_stages}), '
                             f'got {tuple(global_strides)}')
        if drop_path_schedule not in self.drop_path_schedules:
            raise ValueError(f'DSNet: drop_path_schedule must be one of {self.drop_path_schedules}, '
                             f'got {drop_path_schedule!r}')
        if not 0 <= attn_drop_rate < 1:
            raise ValueError(f'DSNet: attn_drop_rate must be in [0, 1), got {attn_drop_rate}')
        if not mlp_ratio > 0:
            raise ValueError(f'DSNet: mlp_ratio must be > 0, got {mlp_ratio}')
        self.embed_dims = tuple(embed_dims)
        self.out_channels = [embed_dims[i] for i in self.out_indices]
        self.out_strides = [4 * 2**i for i in self.out_indices]

        drop_path_rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()  # also under meta
        self.drop_path_schedule = drop_path_schedule
        self.stages = nn.ModuleList()
        prev_dims = in_channels
        for i, (dims, depth, heads) in enumerate(zip(embed_dims, depths, num_heads)):
            patch = 4 if i == 0 else 2
            # 'per_stage': the reference indexes the global list with the in-stage index
            first_block = sum(depths[:i]) if drop_path_schedule == 'linear' else 0
            blocks = [
                DualStreamBlock(
                    dims, heads, global_strides[i], mlp_ratio=mlp_ratio,
                    attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rates[first_block + j],
                    norm_cfg=norm_cfg, with_cp=with_cp) for j in range(depth)
            ]
            self.stages.append(nn.Sequential(OrderedDict(
                downsample=nn.Conv2d(prev_dims, dims, kernel_size=patch, stride=patch),
                blocks=nn.Sequential(*blocks))))
            prev_dims = dims
        # the reference's final norm, on the last stage's output
        self.norm = build_norm_layer(norm_cfg, embed_dims[-1])[1]
        self._freeze_stages()

    def frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        modules = [self.stages[0].downsample] + list(self.stages[:self.frozen_stages])
        if self.frozen_stages == self.num_stages:
            modules.append(self.norm)
        return modules

    @classmethod
    def weights_source(cls, filename, folder):
        """``dsnet_{t,s,b}_in1k[_backbone].pth``: PaddleClas's ImageNet weights, converted."""
        m = re.fullmatch(r'dsnet_(?P<a>[tsb])_in1k(_backbone)?\.pth', filename)
        if m is None:
            return None
        arch = dict(t='tiny', s='small', b='base')[m['a']]
        url = f'https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_{arch}_pretrained.pdparams'
        return arch, f'python tools/model_converters/dsnet_to_mmvit.py {url} {folder}/dsnet_{m["a"]}_in1k.pth'

    @classmethod
    def is_third_party_checkpoint(cls, keys) -> bool:
        """The reference's ``blocks1`` .. ``blocks4`` with ``pos_embed``/``channel_up`` layers."""
        return any(re.match(r'blocks[1-4]\.\d+\.(pos_embed|channel_up|cross_channel_up_sa)\.', k) for k in keys)

    def min_export_size(self, dynamic: bool) -> int:
        """32; with dynamic H/W the graph keeps stage i's global grid ``h_i // s_i`` (the eager
        model's ``max(h_i // s_i, 1)``), valid while ``H >= 2^(i+2) * s_i`` (64 by default)."""
        if not dynamic:
            return self.min_input_size
        strides = [stage.blocks[0].global_stride for stage in self.stages]
        return max([self.min_input_size] + [2**(i + 2) * s for i, s in enumerate(strides)])

    def get_layer_depth(self, param_name: str, prefix: str = '', decay_type: str = 'layer_wise') -> Tuple[int, int]:
        """``(layer_id, num_layers)`` of a parameter for layer-wise lr decay (mmpretrain's
        ``get_layer_depth`` interface; the rate is ``decay ** (num_layers - layer_id - 1)``).

        The grouping is timm's ConvNeXt ``group_matcher`` (the same ``stages.i.downsample`` /
        ``stages.i.blocks.j`` layout; :func:`~.layer_depth.stage_layer_depth`): the first patch
        embedding 0; one id per block (``'layer_wise'``) or per stage (``'stage_wise'``); the
        final norm with the last block (timm's ``norm_pre``) or stage; parameters outside
        ``prefix`` (neck, heads) the last id, the full lr.

        Args:
            param_name (str): Parameter name, e.g. ``'backbone.stages.1.blocks.0.cpe.weight'``.
            prefix (str): The backbone's prefix in ``param_name``. Defaults to ''.
            decay_type (str): ``'layer_wise'`` or ``'stage_wise'``. Defaults to ``'layer_wise'``.
        """
        name = strip_prefix(param_name, prefix)
        if name is not None and name.startswith('norm.'):
            name = f'stages.{self.num_stages - 1}.norm'
        return stage_layer_depth(name, self.arch_settings['depths'], decay_type)

    def default_init_weights(self):
        """As the reference: truncated-normal Linear weights, unit LayerNorms, PyTorch conv init."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_init(module, std=.02, bias=0.)
            elif isinstance(module, nn.LayerNorm):
                constant_init(module, val=1., bias=0.)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C_in, H, W) -> tuple of (B, embed_dims[i], H / 2^(i+2), W / 2^(i+2)) for out_indices."""
        self.check_input(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == self.num_stages - 1:
                x = self.norm(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
