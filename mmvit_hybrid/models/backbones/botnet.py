"""BoTNet: "Bottleneck Transformers for Visual Recognition" (Srinivas, Lin, Parmar, Shlens, Abbeel,
Vaswani; CVPR 2021, arXiv 2101.11605). Reference code: the authors' TensorFlow gist
https://gist.github.com/aravindsrinivas/56359b79f0ce4449bcb04ab4b56a57a2 (no official weights).

A ResNet whose last bottleneck blocks of stage c5 (all three for depths 50/101/152/200) replace
the 3x3 convolution by multi-head self-attention (4 heads, no bias in q/k/v, 2-D relative position
logits, q scaled before the content and the position term; see
:class:`~mmvit_hybrid.models.layers.RelPosAttention`). In the strided c5 block the attention runs at
the c4 resolution and a 2x2 average pooling follows it; the shortcut is the usual strided 1x1
conv + BN. ``arch='s1-50'`` etc. is the paper's BoTNet-S1 option: c5 at stride 1 (outputs at
strides 4/8/16/16).

Why built this way: the conv stages *are* ResNet's, so they reuse mmdet's ``Bottleneck`` block
and mmdet/torchvision's module names (``conv1``, ``bn1``, ``layer1`` .. ``layer4``,
``downsample.0/1``): an ImageNet ResNet checkpoint maps 1:1 onto every conv layer, and the
converter ``tools/model_converters/resnet_to_botnet.py`` is a key-for-key copy that reports the
few tensors it cannot fill. The class itself derives from this package's ``HybridBackbone`` (not
from mmdet's ``ResNet``) for what the package's backbones share: ``arch`` tables with validated
custom dicts, ``out_indices``/``frozen_stages``/``norm_eval`` handling and strict ``Pretrained``
loading with errors that say what to change.

Input sizes. The relative tables are sized for the feature maps of ``img_size`` (224 for
ImageNet, 1024 for the paper's detection canvas). With ``fixed_input_size=True`` (the paper) any
other input size raises an error; with ``False`` (default) the tables are resampled to each
input's feature size (identity at ``img_size``), so any size works, e.g. 333x517 (odd maps: the
strided block pools with ``ceil_mode``, matching the 1x1 stride-2 shortcut).

======  =========  =========  ========================================  ==========
arch    depths     c5 stride  params (1000-class head, img_size=224)    GMACs @224
======  =========  =========  ========================================  ==========
50      3-4-6-3    2          20.85M                                    4.02
101     3-4-23-3   2          39.84M                                    7.73
152     3-8-36-3   2          55.49M                                    11.45
200     3-24-36-3  2          59.97M                                    14.94
s1-50   3-4-6-3    1          20.86M                                    5.41
======  =========  =========  ========================================  ==========

Measured with :func:`mmvit_hybrid.utils.count_flops` (MACs = FLOPs / 2) on the backbone plus
global pooling and a 2048 x 1000 linear head, the attention as its explicit math
(``attn_impl='matmul'``, which the default ``'auto'`` runs at 224). The paper gives 20.8M for
BoT50; ``tests/test_botnet.py`` pins these numbers and derives them from mmpretrain's ResNet of
the same depth plus an analytic count of the attention.
"""
import math
import re
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmdet.models.backbones.resnet import Bottleneck
from mmengine.model.weight_init import constant_init, kaiming_init
from torch.nn.modules.batchnorm import _BatchNorm

from mmvit_hybrid.registry import MODELS
from ..layers import RelPosAttention
from .base_backbone import HybridBackbone


# ResNet's stage depths (He et al. 2016, Table 1; 200 from He et al. 2016b), shared by BoTNet and BoTNet-S1
RESNET_DEPTHS = {'50': (3, 4, 6, 3), '101': (3, 4, 23, 3), '152': (3, 8, 36, 3), '200': (3, 24, 36, 3)}


class BoTBlock(Bottleneck):
    """mmdet's ResNet bottleneck (1x1, 3x3, 1x1; stride on the 3x3), optionally with the 3x3 conv
    replaced by :class:`RelPosAttention` (the BoT block). Checkpointing without reentrancy.

    Args:
        inplanes (int): Input channels.
        planes (int): Bottleneck width; the output has ``4 * planes`` channels.
        stride (int): Stride of the block (the 3x3 conv, or pooling after attention). Defaults to 1.
        downsample (nn.Module, optional): Shortcut projection. Defaults to None (identity).
        with_cp (bool): Recompute the block in backward to save memory. Defaults to False.
        norm_cfg (dict): Norm layers. Defaults to BN.
        attn_cfg (dict, optional): Keyword arguments of :class:`RelPosAttention` (num_heads,
            feat_size, qkv_bias, fixed_input_size, attn_impl); None keeps the 3x3 conv.
            Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 inplanes: int,
                 planes: int,
                 stride: int = 1,
                 downsample: Optional[nn.Module] = None,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 attn_cfg: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(inplanes, planes, stride=stride, downsample=downsample, style='pytorch',
                         with_cp=with_cp, norm_cfg=norm_cfg, init_cfg=init_cfg)
        if attn_cfg is not None:
            self.conv2 = RelPosAttention(planes, stride=stride, **attn_cfg)

    def _inner_forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inplanes, H, W) -> (B, 4 * planes, ceil(H / stride), ceil(W / stride))."""
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        else:
            out = self._inner_forward(x)
        return self.relu(out)


@MODELS.register_module()
class BoTNet(HybridBackbone):
    """BoTNet backbone: ResNet with relative-position self-attention in the last c5 blocks.

    See the module docstring for the design, the sizes and the input-size handling.

    Args:
        arch (str | dict): ``'50'``, ``'101'``, ``'152'``, ``'200'`` or their BoTNet-S1 versions
            ``'s1-50'`` ... ``'s1-200'`` (c5 at stride 1), or a dict with ``depths`` and
            ``strides`` (four entries each; strides 1 or 2). Defaults to ``'50'``.
        in_channels (int): Input image channels. Defaults to 3.
        img_size (int | Sequence[int]): (H, W) of the input the relative tables are sized for:
            224 for ImageNet, 1024 for the paper's detection canvas. Defaults to 224.
        fixed_input_size (bool): The paper's protocol: raise on inputs of any other size than
            ``img_size`` instead of resampling the tables. Defaults to False.
        num_heads (int): Attention heads. Defaults to 4.
        num_attn_blocks (int): How many of the last c5 blocks use attention. Defaults to 3.
        qkv_bias (bool): Bias in q/k/v (the paper has none). Defaults to False.
        attn_impl (str): ``'auto'``, ``'matmul'`` (explicit logits) or ``'sdpa'`` (fused, O(N)
            memory); see :class:`RelPosAttention`. Defaults to ``'auto'``.
        out_indices (Sequence[int] | int): Stages (c2..c5 = 0..3) to return. Defaults to (0, 1, 2, 3).
        frozen_stages (int): -1 freezes nothing; 0 the stem; k the stem and stages 1..k.
            Defaults to -1.
        norm_eval (bool): Keep BatchNorms in eval mode during training. Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        zero_init_residual (bool): Zero the last BN of every block in the default init.
            Defaults to True.
        norm_cfg (dict): Norm layers. Defaults to BN.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix=...)``
            (strict; convert ResNet weights with ``tools/model_converters/resnet_to_botnet.py``).
            Defaults to None.

    Examples:
        >>> import torch
        >>> from mmvit_hybrid.models import BoTNet
        >>> model = BoTNet(arch='50', img_size=224).eval()
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 224, 224))]
        [(1, 256, 56, 56), (1, 512, 28, 28), (1, 1024, 14, 14), (1, 2048, 7, 7)]
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 333, 517))]
        [(1, 256, 84, 130), (1, 512, 42, 65), (1, 1024, 21, 33), (1, 2048, 11, 17)]
    """
    arch_keys = ('depths', 'strides')
    arch_zoo = {
        **{name: dict(depths=depths, strides=(1, 2, 2, 2)) for name, depths in RESNET_DEPTHS.items()},
        **{f's1-{name}': dict(depths=depths, strides=(1, 2, 2, 1)) for name, depths in RESNET_DEPTHS.items()},
    }
    stem_channels = 64
    expansion = 4
    converter_hint = ('ImageNet ResNet weights with '
                      'python tools/model_converters/resnet_to_botnet.py SRC DST --arch 50')
    third_party_format = ('an ImageNet ResNet checkpoint (torchvision / timm / mmpretrain layout)',
                          'python tools/model_converters/resnet_to_botnet.py SRC DST --arch 50, then use DST with a '
                          'BoTNet config (init_cfg=dict(type="Pretrained", checkpoint=DST))')
    onnx_exporter = ('torchscript', 'the relative-position attention exports through its explicit matmul path on '
                                    'both exporters (both checked at two sizes); the TorchScript one exports in a '
                                    'few seconds')

    def __init__(self,
                 arch: Union[str, dict] = '50',
                 in_channels: int = 3,
                 img_size: Union[int, Sequence[int]] = 224,
                 fixed_input_size: bool = False,
                 num_heads: int = 4,
                 num_attn_blocks: int = 3,
                 qkv_bias: bool = False,
                 attn_impl: str = 'auto',
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, norm_eval, init_cfg=init_cfg)
        depths = tuple(self.arch_settings['depths'])
        strides = tuple(self.arch_settings['strides'])
        if not all(s in (1, 2) for s in strides):
            raise ValueError(f'BoTNet: strides must be 1 or 2 per stage, got {strides}')
        if not isinstance(num_attn_blocks, int) or not 0 <= num_attn_blocks <= depths[3]:
            raise ValueError(f'BoTNet: num_attn_blocks must be an int in [0, {depths[3]}] (the c5 depth), '
                             f'got {num_attn_blocks!r}')
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if len(img_size) != 2 or not all(isinstance(s, int) and s >= 32 for s in img_size):
            raise ValueError(f'BoTNet: img_size must be an int or (H, W) of ints >= 32, got {img_size}')
        self.img_size = img_size
        self.fixed_input_size = fixed_input_size
        self.depths = depths
        self.strides = strides
        self.zero_init_residual = zero_init_residual
        widths = [self.stem_channels * 2**i * self.expansion for i in range(4)]
        total_strides = [4 * math.prod(strides[:i + 1]) for i in range(4)]
        self.out_channels = [widths[i] for i in self.out_indices]
        self.out_strides = [total_strides[i] for i in self.out_indices]

        # stem: 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max pooling (torchvision's names)
        self.conv1 = nn.Conv2d(in_channels, self.stem_channels, 7, stride=2, padding=3, bias=False)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, self.stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        attn_cfg = dict(num_heads=num_heads, qkv_bias=qkv_bias, fixed_input_size=fixed_input_size,
                        attn_impl=attn_impl)
        feat = [-(-s // 4) for s in img_size]  # the map entering layer1 at img_size (the stem rounds up)
        inplanes = self.stem_channels
        self.res_layers = []
        for i, (depth, stride) in enumerate(zip(depths, strides)):
            num_attn = num_attn_blocks if i == 3 else 0
            layer, feat = self._make_layer(inplanes, self.stem_channels * 2**i, depth, stride, num_attn, feat,
                                           attn_cfg, with_cp, norm_cfg)
            inplanes = self.stem_channels * 2**i * self.expansion
            self.add_module(f'layer{i + 1}', layer)
            self.res_layers.append(f'layer{i + 1}')
        self._freeze_stages()

    def _make_layer(self, inplanes: int, planes: int, depth: int, stride: int, num_attn: int, feat: list,
                    attn_cfg: dict, with_cp: bool, norm_cfg: dict) -> Tuple[nn.Sequential, list]:
        """One ResNet stage whose last ``num_attn`` blocks attend; ``feat`` is the (H, W) entering it
        at ``img_size`` (the attention's table size). Returns the stage and the (H, W) leaving it."""
        downsample = None
        if stride != 1 or inplanes != planes * self.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * self.expansion, 1, stride=stride, bias=False),
                build_norm_layer(norm_cfg, planes * self.expansion)[1])
        blocks = []
        for j in range(depth):
            block_attn = dict(attn_cfg, feat_size=tuple(feat)) if j >= depth - num_attn else None
            block_stride = stride if j == 0 else 1
            blocks.append(BoTBlock(inplanes if j == 0 else planes * self.expansion, planes, stride=block_stride,
                                   downsample=downsample if j == 0 else None, with_cp=with_cp,
                                   norm_cfg=norm_cfg, attn_cfg=block_attn))
            feat = [-(-s // block_stride) for s in feat]  # every stride-2 layer rounds up
        return nn.Sequential(*blocks), feat

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    def frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        stem = [self.conv1, self.norm1]
        return stem + [getattr(self, name) for name in self.res_layers[:self.frozen_stages]]

    def default_init_weights(self):
        """mmdet's ResNet init (Kaiming fan-out convs, unit BNs, zero last BN per block if
        ``zero_init_residual``), then the attention layers' own init."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                kaiming_init(module, mode='fan_out', nonlinearity='relu')
            elif isinstance(module, (_BatchNorm, nn.GroupNorm)):
                constant_init(module, 1)
        for module in self.modules():
            if isinstance(module, RelPosAttention):
                module.reset_parameters()
            elif isinstance(module, BoTBlock) and self.zero_init_residual:
                constant_init(module.norm3, 0)

    @classmethod
    def weights_source(cls, filename, folder):
        """``botnet50_from_resnet50_{H}[x{W}].pth``: torchvision's ResNet-50 V2 weights converted for
        an H x W input."""
        m = re.fullmatch(r'botnet50_from_resnet50_(?P<h>\d+)(?:x(?P<w>\d+))?\.pth', filename)
        if m is None:
            return None
        url = 'https://download.pytorch.org/models/resnet50-0676ba61.pth'
        return '50', (f'python tools/model_converters/resnet_to_botnet.py {url} {folder}/{filename} --arch 50 '
                      f'--img-size {m["h"]} {m["w"] or m["h"]}')

    @classmethod
    def is_third_party_checkpoint(cls, keys) -> bool:
        """ResNet's ``layer4`` 3x3 convs, no relative-position tables."""
        return any(re.match(r'(backbone\.)?layer4\.\d+\.conv2\.weight$', k) for k in keys) \
            and not any('rel_pos' in k for k in keys)

    def min_export_size(self, dynamic: bool) -> int:
        """33: at 32 and below the c5 attention map is a single pixel (exports there were not checked)."""
        return 33

    def explain_load_error(self, missing, mismatched) -> str:
        """Tables of another ``img_size``, or a ResNet checkpoint without the attention layers."""
        if any('rel_pos' in k for k in mismatched):
            return (f'\nBoTNet: the relative-position tables of this checkpoint are sized for another '
                    f'img_size than {self.img_size}: set img_size to the size it was trained at (other '
                    'input sizes still work, the tables are resampled at run time).')
        if any('conv2.qkv' in k for k in missing):
            return ('\nBoTNet: the attention layers are missing from this checkpoint: if it is an ImageNet '
                    'ResNet, convert it first with `python tools/model_converters/resnet_to_botnet.py SRC DST '
                    f'--arch ARCH --img-size {self.img_size[0]} {self.img_size[1]}` (copies every conv layer, '
                    'reports the newly initialised attention layers) and point `checkpoint` at DST.')
        return ''

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C_in, H, W) -> tuple of (B, 256 * 2^i, ~H / stride_i, ~W / stride_i) for out_indices."""
        self.check_input(x)
        x = self.maxpool(self.relu(self.norm1(self.conv1(x))))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def check_input(self, x: torch.Tensor):
        """The base check, and with ``fixed_input_size`` the size the tables were built for."""
        super().check_input(x)
        if self.fixed_input_size and tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f'BoTNet(fixed_input_size=True) was built for {self.img_size[0]}x{self.img_size[1]} inputs '
                f'(relative-position tables of that size), got {x.shape[-2]}x{x.shape[-1]}: pad every image '
                f'to that canvas (mmdet: `dict(type="Pad", size={self.img_size[::-1]})` in the test pipeline, '
                f'`BatchFixedSizePad` in training), set img_size to the canvas you use, or set '
                'fixed_input_size=False to resample the tables to any size')
