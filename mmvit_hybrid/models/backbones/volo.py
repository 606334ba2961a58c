"""VOLO: Vision Outlooker for Visual Recognition (Yuan, Hou, Jiang, Feng, Yan; arXiv 2106.13112,
TPAMI 2022).

Written for this package after the official ``sail-sg/volo`` ``models/volo.py`` (Copyright 2021
Sea Limited, Apache-2.0) and timm's port ``timm/models/volo.py``; with
``tools/model_converters/volo_to_mmvit.py`` their checkpoints load here and give the same logits
(``tests/test_volo.py`` checks it against timm for D1-D5). The network, channels-last after the
stem:

* stem (stride 8): ConvBNReLU 7x7 s2, ConvBNReLU 3x3, ConvBNReLU 3x3 (64 channels, 128 for D5),
  then a 4x4 stride-4 projection conv;
* stage 0: Outlooker blocks (outlook attention + MLP) at stride 8, no stochastic depth;
* a 2x2 stride-2 conv to stride 16, plus a learned absolute position embedding of
  ``img_size / 16`` x ``img_size / 16``, interpolated bicubically (``align_corners=False``, no
  antialiasing) to the token grid of any other input;
* stages 1-3: transformer blocks (global MHSA + MLP) at stride 16, drop path linear in the global
  block index; the split into three groups gives the dense-prediction taps;
* classification (``out_type='cls_and_tokens'``): a class token, two class-attention blocks and a
  final LayerNorm; the backbone returns ``(cls_token, patch_tokens)`` and
  :class:`~mmvit_hybrid.models.heads.VOLOHead` adds the class logits and 0.5 x the maximum of the
  token-labeling logits.

Dense prediction (``out_type='featmap'``): the outputs of ``out_indices`` (native strides 8, 16,
16, 16) pass a LayerNorm each and, with ``out_strides``, a simple resampling pyramid (ViTDet's and
BEiT/mmseg's): a 2x stride reduction is a 2x2 stride-2 transposed conv (``2^k`` x: ``k`` of them,
norm and GELU between), a 2x increase a 2x2 max-pool keeping odd edges. ``out_strides=(4, 8, 16,
32)`` gives FPN/UperNet their pyramid. Inputs of any size >= 16 work (H and W are rounded down to
the stem's grid like the reference: a 333 x 517 input gives 41 x 64 tokens at stride 8 and
20 x 32 at stride 16).

  ====  ==========  =============  ========  ===  ====  ===========================
  arch  depths      embed_dims     heads     mlp  stem  params (1000-class head)
  ====  ==========  =============  ========  ===  ====  ===========================
  d1    4-4-8-2     192, 384       6, 12     3    64    26.63M
  d2    6-4-10-4    256, 512       8, 16     3    64    58.68M
  d3    8-8-16-4    256, 512       8, 16     3    64    86.33M
  d4    8-8-16-4    384, 768       12, 16    3    64    192.96M
  d5    12-12-20-4  384, 768       12, 16    4    128   295.46M
  ====  ==========  =============  ========  ===  ====  ===========================

Parameter counts measured on this implementation (backbone with the class-attention blocks plus
the two 1000-class linear heads, ``tests/test_volo.py``); they equal timm's ``volo_d*`` models.
"""
import re
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.logging import MMLogger
from mmengine.model.weight_init import constant_init, trunc_normal_, trunc_normal_init

from mmvit_hybrid.registry import MODELS
from ..layers import ClassAttentionBlock, MHSABlock, Outlooker
from ..layers.ceil_pool import CeilPool2d
from .base_backbone import HybridBackbone
from .layer_depth import check_decay_type, strip_prefix


def resize_pos_embed(pos: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """A (1, h0, w0, C) position embedding for an (h, w) token grid: (1, h, w, C), bicubic
    (``align_corners=False``, no antialiasing, as the reference). At (h0, w0) the bicubic weights
    are exactly (0, 1, 0, 0), the identity; no branch on the size, so an exported graph resamples
    for the sizes it meets at run time."""
    # (1, h0, w0, C) -> (1, C, h0, w0) -> (1, C, h, w) -> (1, h, w, C)
    resized = F.interpolate(pos.permute(0, 3, 1, 2).float(), size=tuple(grid), mode='bicubic', align_corners=False)
    return resized.permute(0, 2, 3, 1).to(pos.dtype)


@MODELS.register_module()
class VOLO(HybridBackbone):
    """VOLO backbone: an outlooker stage at stride 8 and transformer stages at stride 16.

    See the module docstring for the design and the arch table.

    Args:
        arch (str | dict): ``'d1'`` to ``'d5'``, or a dict with ``depths``, ``embed_dims``,
            ``num_heads`` (4 entries each; entries 1-3 of ``embed_dims`` and ``num_heads`` equal),
            ``mlp_ratio`` and ``stem_channels``.
        img_size (int | tuple): Training size the position embedding is made for (its grid is
            ``img_size // 16``); other inputs interpolate it. Defaults to 224.
        in_channels (int): Input image channels. Defaults to 3.
        out_type (str): ``'featmap'`` returns (B, C, H, W) maps of ``out_indices``;
            ``'cls_and_tokens'`` runs the class-attention blocks and the final norm and returns
            ``(cls_token (B, C), patch_tokens (B, C, H/16, W/16))`` for
            :class:`~mmvit_hybrid.models.heads.VOLOHead`. Defaults to ``'featmap'``.
        out_indices (Sequence[int] | int, optional): Stages to return (0: outlookers, 1-3:
            transformer groups). None means (0, 1, 2, 3) for ``'featmap'`` and 3 (the only
            choice) for ``'cls_and_tokens'``. Defaults to None.
        out_strides (Sequence[int], optional): ``'featmap'`` only: the stride of each returned
            map, one per out index, each a power-of-two multiple or fraction of the stage's own
            stride (8 for stage 0, 16 after); e.g. (4, 8, 16, 32) for FPN/UperNet. None keeps the
            native strides. Defaults to None.
        num_cls_blocks (int): Class-attention blocks of ``'cls_and_tokens'``. Defaults to 2.
        qkv_bias (bool): Bias of the value/qkv projections. Defaults to False.
        drop_rate (float): Dropout after adding the position embedding. Defaults to 0.
        attn_drop_rate (float): Attention dropout of every block. Defaults to 0.
        drop_path_rate (float): Stochastic depth of the transformer blocks, linear in the global
            block index (outlookers and class blocks: 0, as the reference). Defaults to 0.
        frozen_stages (int): -1 freezes nothing; 0 the stem; k the stem and stages 0..k-1 (stage
            1 with the downsampling conv and the position embedding). Defaults to -1.
        norm_eval (bool): Keep BatchNorms (stem, resampling) in eval mode. Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        norm_cfg (dict): Norm of the stem convs and of the multi-step upsamplers. Defaults to BN.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``;
            a classification checkpoint loads into ``'featmap'`` mode (its class-attention part
            is dropped, the output norms and resamplers start fresh; both are logged).

    Examples:
        >>> import torch
        >>> from mmvit_hybrid.models import VOLO
        >>> model = VOLO(arch='d1', out_strides=(4, 8, 16, 32)).eval()
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 224, 224))]
        [(1, 192, 56, 56), (1, 384, 28, 28), (1, 384, 14, 14), (1, 384, 7, 7)]
        >>> cls_token, tokens = VOLO(arch='d1', out_type='cls_and_tokens').eval()(torch.rand(1, 3, 64, 64))
        >>> tuple(cls_token.shape), tuple(tokens.shape)
        ((1, 384), (1, 384, 4, 4))
    """
    arch_keys = ('depths', 'embed_dims', 'num_heads', 'mlp_ratio', 'stem_channels')
    arch_zoo = {
        'd1': dict(depths=(4, 4, 8, 2), embed_dims=(192, 384, 384, 384), num_heads=(6, 12, 12, 12),
                   mlp_ratio=3, stem_channels=64),
        'd2': dict(depths=(6, 4, 10, 4), embed_dims=(256, 512, 512, 512), num_heads=(8, 16, 16, 16),
                   mlp_ratio=3, stem_channels=64),
        'd3': dict(depths=(8, 8, 16, 4), embed_dims=(256, 512, 512, 512), num_heads=(8, 16, 16, 16),
                   mlp_ratio=3, stem_channels=64),
        'd4': dict(depths=(8, 8, 16, 4), embed_dims=(384, 768, 768, 768), num_heads=(12, 16, 16, 16),
                   mlp_ratio=3, stem_channels=64),
        'd5': dict(depths=(12, 12, 20, 4), embed_dims=(384, 768, 768, 768), num_heads=(12, 16, 16, 16),
                   mlp_ratio=4, stem_channels=128),
    }
    out_types = ('featmap', 'cls_and_tokens')
    native_strides = (8, 16, 16, 16)
    min_input_size = 16
    converter_hint = ('official sail-sg/volo or timm volo_* weights with '
                      'python tools/model_converters/volo_to_mmvit.py SRC DST')
    third_party_format = ('an official sail-sg/volo or timm volo_* checkpoint',
                          'python tools/model_converters/volo_to_mmvit.py SRC DST, then use DST with a VOLO config')
    onnx_exporter = ('dynamo', 'the fused outlook op translates through custom_translation_table; torch.export '
                               'keeps the stem/pooling arithmetic symbolic (the TorchScript trace bakes the outlook '
                               'attention reshape at the export size)')
    # parameters that exist only in one mode; a checkpoint of the other mode lacks or adds them
    cls_only_prefixes = ('cls_token', 'cls_blocks.', 'norm.')
    featmap_only_prefixes = ('out_norms.', 'resamplers.')

    def __init__(self,
                 arch: Union[str, dict] = 'd1',
                 img_size: Union[int, Sequence[int]] = 224,
                 in_channels: int = 3,
                 out_type: str = 'featmap',
                 out_indices: Optional[Union[Sequence[int], int]] = None,
                 out_strides: Optional[Sequence[int]] = None,
                 num_cls_blocks: int = 2,
                 qkv_bias: bool = False,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg=None):
        if out_type not in self.out_types:
            raise ValueError(f'VOLO: unknown out_type {out_type!r}; choose one of {list(self.out_types)}')
        if out_indices is None:
            out_indices = (0, 1, 2, 3) if out_type == 'featmap' else (3, )
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval, drop_path_rate, init_cfg)
        s = self.arch_settings
        depths, embed_dims, num_heads = tuple(s['depths']), tuple(s['embed_dims']), tuple(s['num_heads'])
        if len(set(embed_dims[1:])) != 1 or len(set(num_heads[1:])) != 1:
            raise ValueError(f'VOLO: stages 1-3 share one resolution and width, so embed_dims[1:] and '
                             f'num_heads[1:] must be equal, got embed_dims={embed_dims}, num_heads={num_heads}')
        if out_type == 'cls_and_tokens':
            if self.out_indices != [3]:
                raise ValueError(f"VOLO: out_type='cls_and_tokens' returns the last stage only; set "
                                 f'out_indices=None or 3, got {out_indices!r}')
            if out_strides is not None:
                raise ValueError("VOLO: out_strides resamples feature maps and only applies to out_type='featmap'")
            if not isinstance(num_cls_blocks, int) or num_cls_blocks < 1:
                raise ValueError(f'VOLO: num_cls_blocks must be an int >= 1, got {num_cls_blocks!r}')
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if len(img_size) != 2 or min(img_size) < self.min_input_size:
            raise ValueError(f'VOLO: img_size must be an int or (H, W) of at least {self.min_input_size}, '
                             f'got {img_size}')

        self.out_type = out_type
        self.depths = depths
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        mlp_ratio = s['mlp_ratio']
        self.out_strides = self._parse_out_strides(out_strides)
        if out_type == 'featmap':
            self.out_channels = [embed_dims[i] for i in self.out_indices]
        else:
            self.out_channels = [embed_dims[-1], embed_dims[-1]]

        stem_channels = s['stem_channels']
        self.patch_embed = nn.Sequential(OrderedDict(
            stem=nn.Sequential(*[
                ConvModule(in_channels if i == 0 else stem_channels, stem_channels, k, stride=stride,
                           padding=k // 2, norm_cfg=norm_cfg, act_cfg=dict(type='ReLU'))
                for i, (k, stride) in enumerate([(7, 2), (3, 1), (3, 1)])]),
            proj=nn.Conv2d(stem_channels, embed_dims[0], 4, stride=4)))
        self.downsample = nn.Conv2d(embed_dims[0], embed_dims[1], 2, stride=2)
        # (1, H/16, W/16, C): channels-last like the tokens it is added to
        self.pos_embed = nn.Parameter(torch.zeros(1, img_size[0] // 16, img_size[1] // 16, embed_dims[1]))
        self.pos_drop = nn.Dropout(drop_rate)

        block_cfg = dict(mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, attn_drop_rate=attn_drop_rate, with_cp=with_cp)
        total = sum(depths)
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            if i == 0:
                blocks = [Outlooker(embed_dims[0], num_heads[0], **block_cfg) for _ in range(depth)]
            else:
                blocks = [MHSABlock(embed_dims[i], num_heads[i],
                                    drop_path_rate=drop_path_rate * (first + j) / max(total - 1, 1), **block_cfg)
                          for j in range(depth)]
            self.stages.append(nn.Sequential(*blocks))

        if out_type == 'cls_and_tokens':
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims[-1]))
            self.cls_blocks = nn.ModuleList(
                ClassAttentionBlock(embed_dims[-1], num_heads[-1], **block_cfg) for _ in range(num_cls_blocks))
            self.norm = build_norm_layer(dict(type='LN'), embed_dims[-1])[1]
        else:
            self.out_norms = nn.ModuleDict(
                {str(i): build_norm_layer(dict(type='LN'), embed_dims[i])[1] for i in self.out_indices})
            self.resamplers = nn.ModuleDict({
                str(i): self._build_resampler(embed_dims[i], self.native_strides[i], stride, norm_cfg)
                for i, stride in zip(self.out_indices, self.out_strides)
                if stride != self.native_strides[i]})
        self._freeze_stages()

    def _parse_out_strides(self, out_strides) -> list:
        native = [self.native_strides[i] for i in self.out_indices]
        if out_strides is None:
            return native
        out_strides = list(out_strides)
        if len(out_strides) != len(self.out_indices):
            raise ValueError(f'VOLO: out_strides needs one stride per out index {self.out_indices}, got {out_strides}')
        for i, n, t in zip(self.out_indices, native, out_strides):
            ratio = max(n, t) / min(n, t) if isinstance(t, int) and t > 0 else 0
            if ratio < 1 or ratio != int(ratio) or int(ratio) & (int(ratio) - 1):
                raise ValueError(f'VOLO: out_strides entry {t!r} for stage {i} (native stride {n}) must be '
                                 f'{n} times or divided by a power of two, e.g. {n // 2}, {n} or {n * 2}')
        return out_strides

    @staticmethod
    def _build_resampler(channels: int, native: int, target: int, norm_cfg: dict) -> nn.Module:
        """2^k x upsampling by k 2x2 transposed convs (norm + GELU between), or max-pooling."""
        if target > native:
            return CeilPool2d(target // native, 'max')
        steps = (native // target).bit_length() - 1
        layers = [ConvModule(channels, channels, 2, stride=2, conv_cfg=dict(type='deconv'), norm_cfg=norm_cfg,
                             act_cfg=dict(type='GELU')) for _ in range(steps - 1)]
        return nn.Sequential(*layers, nn.ConvTranspose2d(channels, channels, 2, stride=2))

    def frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        modules = [self.patch_embed] + list(self.stages[:self.frozen_stages])
        if self.frozen_stages >= 2:
            modules.append(self.downsample)
        if self.out_type == 'featmap':
            modules += [self.out_norms[str(i)] for i in self.out_indices if i < self.frozen_stages]
        return modules

    @classmethod
    def weights_source(cls, filename, folder):
        """``volo_d{1-5}_in1k.pth``: the official 224 classifiers (sail-sg/volo releases), converted."""
        m = re.fullmatch(r'volo_(?P<a>d[1-5])_in1k\.pth', filename)
        if m is None:
            return None
        release = dict(d1='d1_224_84.2', d2='d2_224_85.2', d3='d3_224_85.4', d4='d4_224_85.7', d5='d5_224_86.10')
        url = f'https://github.com/sail-sg/volo/releases/download/volo_1/{release[m["a"]]}.pth.tar'
        return m['a'], f'python tools/model_converters/volo_to_mmvit.py {url} {folder}/{filename}'

    @classmethod
    def is_third_party_checkpoint(cls, keys) -> bool:
        """The reference's ``patch_embed.conv`` stem and ``network`` stages."""
        return any(k.startswith('network.') for k in keys) and any(k.startswith('patch_embed.conv.') for k in keys)

    def min_export_size(self, dynamic: bool) -> int:
        """16; 32 with dynamic H/W and a stride-32 output (torch.export needs H, W >= 31 for its pooling)."""
        return 32 if dynamic and max(self.out_strides) >= 32 else self.min_input_size

    def _freeze_stages(self):
        super()._freeze_stages()
        if self.frozen_stages >= 2:
            self.pos_embed.requires_grad = False

    def get_layer_depth(self, param_name: str, prefix: str = '', decay_type: str = 'layer_wise') -> Tuple[int, int]:
        """``(layer_id, num_layers)`` of a parameter for layer-wise lr decay (mmpretrain's
        ``get_layer_depth`` interface; the rate is ``decay ** (num_layers - layer_id - 1)``).

        ``'layer_wise'`` is timm's ``VOLO.group_matcher`` (what timm's ``param_groups_layer_decay``
        uses for the sail-sg/timm weights) in this package's names: 0 for the stem, the position
        embedding and the class token; one id per outlooker, then one for the downsampling conv,
        one per transformer block, one per class-attention block (the final norm shares the last
        one's); parameters after the backbone get the next id, the full lr.
        ``'stage_wise'`` (timm's ``coarse`` grouping of stage layouts, this package's choice for
        VOLO): 0, then one id per stage (the downsampling conv with stage 1), one for the
        class-attention part, then the rest. The dense mode's output norms and resamplers are
        new layers, not in any checkpoint: the last id, like the neck and heads outside ``prefix``.

        Args:
            param_name (str): Parameter name, e.g. ``'backbone.stages.1.0.attn.qkv.weight'``.
            prefix (str): The backbone's prefix in ``param_name``. Defaults to ''.
            decay_type (str): ``'layer_wise'`` or ``'stage_wise'``. Defaults to ``'layer_wise'``.
        """
        layer_wise = check_decay_type(decay_type)
        if layer_wise:  # first id of each stage's blocks; the downsampling conv between stages 0 and 1
            starts = [1] + [2 + sum(self.depths[:i]) for i in range(1, len(self.depths))]
            downsample, tail = starts[1] - 1, 2 + sum(self.depths)
        else:
            starts = list(range(1, len(self.depths) + 1))
            downsample, tail = starts[1], len(self.depths) + 1
        num_cls = (len(self.cls_blocks) if layer_wise else 1) if self.out_type == 'cls_and_tokens' else 0
        num_layers = tail + num_cls + 1
        parts = (strip_prefix(param_name, prefix) or '').split('.')
        if parts[0] in ('patch_embed', 'pos_embed', 'cls_token'):
            return 0, num_layers
        if parts[0] == 'downsample':
            return downsample, num_layers
        if parts[0] == 'stages':
            return starts[int(parts[1])] + (int(parts[2]) if layer_wise else 0), num_layers
        if parts[0] == 'cls_blocks':
            return tail + (int(parts[1]) if layer_wise else 0), num_layers
        if parts[0] == 'norm':  # the final norm of the class-attention part
            return tail + num_cls - 1, num_layers
        return num_layers - 1, num_layers

    def default_init_weights(self):
        """The reference's init: truncated normal (std 0.02) linears with zero biases, position
        embedding and class token; unit/zero LayerNorms; PyTorch's default for convs and BNs."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_init(module, std=.02, bias=0.)
            elif isinstance(module, nn.LayerNorm):
                constant_init(module, val=1., bias=0.)
        trunc_normal_(self.pos_embed, std=.02)
        if self.out_type == 'cls_and_tokens':
            trunc_normal_(self.cls_token, std=.02)

    def resized_pos_embed(self, hw: Sequence[int]) -> torch.Tensor:
        """The position embedding for an (h, w) token grid: (1, h, w, C)."""
        return resize_pos_embed(self.pos_embed, hw)

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """``self.patch_embed`` (stem and patch projection): (B, C_in, H, W) -> (B, C0, H/8, W/8).

        Each stem ``ConvModule``'s conv, norm and activation are called in turn, dropping every
        input as soon as its conv has run: ``ConvModule.forward`` holds its input through the norm
        and the activation, one more stem-sized activation (12 MiB for 4 x 224 x 224) at the
        forward's peak memory, which is in the stem.
        """
        for block in self.patch_embed.stem:
            x = block.conv(x)
            if block.with_norm:
                x = block.norm(x)
            if block.with_activation:
                x = block.activate(x)
        return self.patch_embed.proj(x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``'featmap'``: (B, C_in, H, W) -> tuple of (B, embed_dims[i], H / s_i, W / s_i) for the
        out indices and out strides; ``'cls_and_tokens'``: -> ((B, C), (B, C, H/16, W/16))."""
        self.check_input(x)
        # contiguous channels-last tokens: a permuted view would make every residual sum inherit its
        # strides, and each LayerNorm / Linear of the blocks would then copy its input first
        x = self.embed_patches(x).permute(0, 2, 3, 1).contiguous()  # (B, C0, H/8, W/8) -> (B, H/8, W/8, C0)
        feats = {}
        last = self.out_indices[-1]
        for i, stage in enumerate(self.stages):
            if i == 1:
                x = self.downsample(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous()  # (B, H/16, W/16, C1)
                x = self.pos_drop(x + self.resized_pos_embed(x.shape[1:3]))
            x = stage(x)
            if self.out_type == 'featmap' and i in self.out_indices:
                feats[i] = x
                if i == last:
                    break
        if self.out_type == 'cls_and_tokens':
            return self._forward_cls(x)
        return self._forward_featmaps(feats)

    def _forward_featmaps(self, feats: dict) -> Tuple[torch.Tensor, ...]:
        """{stage: (B, h, w, C) tokens} -> the normed (B, C, H / s, W / s) maps at the out strides."""
        outs = []
        for i in self.out_indices:
            out = self.out_norms[str(i)](feats[i]).permute(0, 3, 1, 2)  # (B, h, w, C) -> (B, C, h, w)
            if str(i) in self.resamplers:
                out = self.resamplers[str(i)](out)
            outs.append(out.contiguous())
        return tuple(outs)

    def _forward_cls(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        B, H, W, C = x.shape
        tokens = torch.cat([self.cls_token.expand(B, -1, -1), x.reshape(B, H * W, C)], dim=1)  # (B, 1+HW, C)
        for block in self.cls_blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        patch = tokens[:, 1:].transpose(1, 2).reshape(B, C, H, W)  # (B, HW, C) -> (B, C, H, W)
        return tokens[:, 0], patch

    @property
    def init_only_prefixes(self) -> tuple:
        """In ``'featmap'`` mode a classification checkpoint lacks the output norms and resamplers."""
        return self.featmap_only_prefixes if self.out_type == 'featmap' else ()

    def adapt_pretrained(self, state_dict: dict) -> dict:
        """Fit a checkpoint of either mode: ``'featmap'`` drops the class-attention part; a position
        embedding of another grid is interpolated (bicubic)."""
        logger = MMLogger.get_current_instance()
        if self.out_type == 'featmap':
            dropped = [k for k in state_dict if k.startswith(self.cls_only_prefixes)]
            state_dict = {k: v for k, v in state_dict.items() if k not in dropped}
            if dropped:
                logger.info(f'VOLO: dense mode ignores {len(dropped)} classification tensors of the checkpoint '
                            '(class token, class-attention blocks, final norm)')
        pos = state_dict.get('pos_embed')
        grid = tuple(self.pos_embed.shape[1:3])
        if pos is not None and pos.dim() == 4 and pos.shape[0] == 1 and pos.shape[-1] == self.pos_embed.shape[-1] \
                and tuple(pos.shape[1:3]) != grid:
            logger.info(f'VOLO: interpolating the checkpoint position embedding {tuple(pos.shape[1:3])} -> {grid}')
            state_dict = dict(state_dict, pos_embed=resize_pos_embed(pos, grid))
        return state_dict
