"""Turn an ImageNet ResNet checkpoint into a BoTNet checkpoint of the same depth.

BoTNet's conv layers are ResNet's, under the same names, so every tensor is copied by name. Three
layouts are read (``.pth``/``.bin`` torch files or ``.safetensors``):

* torchvision ``resnet50`` (what mmdet's ``torchvision://resnet50`` downloads) and timm ``resnet50``
  (``timm/resnet50.*`` ``model.safetensors`` / ``pytorch_model.bin``): plain keys ``conv1``, ``bn1``,
  ``layer1.0.conv1`` ... ``layer1.0.downsample.{0,1}``, classifier ``fc``;
* mmpretrain ``ResNet`` classifiers (``resnet50_8xb32_in1k_*.pth``: ``{'state_dict': ...}``, keys
  ``backbone.conv1``, ``backbone.layer1.0.bn1`` ..., classifier ``head.fc``) and mmdet detectors
  (``backbone.*``): the ``backbone.`` keys are taken, every other key (head, neck) is dropped;
* a ``module.`` (DDP) prefix or a ``model`` wrapper are removed. Only the attention layers that replace the
3x3 convs of the last c5 blocks (``layer4.{j}.conv2.qkv.weight``, ``.rel_pos_h``, ``.rel_pos_w``)
have no ResNet counterpart, and the BN after each of them (``layer4.{j}.bn2``) would keep the
statistics of the 3x3 conv it followed in the ResNet: both keep BoTNet's default initialisation
(seeded). The ResNet's 3x3 convs and BNs there, and its classifier (``fc.*`` / ``head.fc.*``), are
dropped. The report lists
exactly these tensors. Anything else that does not match (another depth, another layout) is an
error that names the keys. The result loads strictly with
``init_cfg=dict(type='Pretrained', checkpoint=DST)``.

SRC may be a URL (torchvision's ``https://download.pytorch.org/models/resnet50-0676ba61.pth``,
mmpretrain's model-zoo ``.pth``): it is downloaded into a cache folder first
(``checkpoint_source.py``). Errors end the tool with one line and leave no output file.

Usage:
    python tools/model_converters/resnet_to_botnet.py resnet50.pth botnet50_from_r50.pth \
        --arch 50 --img-size 1024 1024
"""
import argparse
import os
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # checkpoint_source.py (URL sources, atomic outputs) is shared by the converters
    sys.path.insert(0, _HERE)
from checkpoint_source import add_source_args, local_source, run_cli, save_outputs  # noqa: E402

HEAD_KEYS = re.compile(r'^(fc|head)\.')
LAYOUTS = ('a torchvision or timm ResNet state dict (conv1.weight, bn1.*, layer1.0.conv1.weight, ..., fc.*), or an '
           'mmpretrain/mmdet ResNet checkpoint ({"state_dict": ...} with backbone.conv1.weight, '
           'backbone.layer1.0.bn1.*, ..., head.fc.*)')


def split_layout(checkpoint: dict) -> Tuple[str, Dict[str, torch.Tensor], List[str]]:
    """Return ``(layout, backbone tensors in torchvision naming, dropped non-backbone keys)``.

    torchvision/timm files are plain; mmdet/mmpretrain ones carry ``state_dict`` and ``backbone.``
    (their heads and necks are dropped); a ``model`` wrapper or DDP ``module.`` prefix is removed.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f'resnet_to_botnet: the file holds a {type(checkpoint).__name__}; expected {LAYOUTS}')
    state_dict = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
    state_dict = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}
    if any(k.startswith('backbone.') for k in state_dict):
        dropped = [k for k in state_dict if not k.startswith('backbone.')]
        return ('mmpretrain/mmdet (backbone. prefix)',
                {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}, dropped)
    if not any(k.startswith('layer1.') for k in state_dict):
        raise ValueError(f'resnet_to_botnet: not a ResNet checkpoint (e.g. keys {sorted(state_dict)[:4]}); '
                         f'expected {LAYOUTS}')
    return 'torchvision/timm (plain keys)', state_dict, []


def load_source(path: str) -> dict:
    """A ``.safetensors`` file (timm's hub format) or a torch file (``weights_only``, through this
    package's loader, which also allows the numpy values of mmpretrain/mmdet ``meta``)."""
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    from mmvit_hybrid.utils.checkpoint import load_from_local
    return load_from_local(path, map_location='cpu')


def convert(resnet_state: Dict[str, torch.Tensor],
            botnet: torch.nn.Module) -> Tuple['OrderedDict[str, torch.Tensor]', Dict[str, List[str]]]:
    """Fill ``botnet``'s state dict from ``resnet_state``.

    Returns the full BoTNet state dict and a report with ``layout`` (the source layout) and the
    keys ``loaded`` (copied from the ResNet), ``new`` (attention tensors kept at BoTNet's init) and
    ``dropped`` (source tensors without a place: replaced 3x3 convs, the classifier, an
    mmpretrain/mmdet head). Raises ValueError on any other mismatch.
    """
    layout, resnet_state, outside = split_layout(resnet_state)
    target = botnet.state_dict()
    attn_blocks = sorted({k.rsplit('.conv2.', 1)[0] for k in target if '.conv2.qkv.' in k})
    # the attention and the norm after it: the ResNet's 3x3 conv and its BN statistics do not apply
    replaced = tuple(f'{block}.{name}.' for block in attn_blocks
                     for name in ('conv2', botnet.get_submodule(block).norm2_name))
    new = [k for k in target if k.startswith(replaced)]
    dropped = [k for k in resnet_state if k.startswith(replaced) or HEAD_KEYS.match(k)]
    missing = [k for k in target if k not in resnet_state and k not in new]
    unexpected = [k for k in resnet_state if k not in target and k not in dropped]
    if missing or unexpected:
        raise ValueError(
            f'resnet_to_botnet: the checkpoint does not match BoTNet(arch={botnet.arch_settings}) layer for '
            f'layer: {len(missing)} BoTNet tensors have no counterpart (e.g. {missing[:4]}), '
            f'{len(unexpected)} checkpoint tensors have no place (e.g. {unexpected[:4]}). Pass the --arch of '
            f'the ResNet depth (50/101/152/200), or {LAYOUTS}; not ResNet-D/V1c (timm resnet50d, mmpretrain '
            'ResNetV1c/V1d), whose stem differs.')
    loaded = [k for k in target if k in resnet_state and k not in new]
    shapes = [f'{k}: {tuple(resnet_state[k].shape)} vs {tuple(target[k].shape)}' for k in loaded
              if resnet_state[k].shape != target[k].shape]
    if shapes:
        raise ValueError(f'resnet_to_botnet: tensors of other shapes than BoTNet expects: {shapes[:4]}; '
                         'check --arch and the number of input channels')
    state = OrderedDict((k, v if k in new else resnet_state[k].to(v.dtype)) for k, v in target.items())
    return state, dict(layout=layout, loaded=loaded, new=new, dropped=dropped + outside)


def format_report(report: Dict[str, List[str]]) -> str:
    lines = [f'source layout: {report.get("layout", "?")}',
             f'copied from the ResNet: {len(report["loaded"])} tensors (every other conv/BN layer of the stem '
             'and of layer1..layer4, the shortcut projections included)',
             f'newly initialised (BoTNet default init): {len(report["new"])} tensors']
    lines += [f'  {k}' for k in report['new']]
    lines.append(f'dropped from the source: {len(report["dropped"])} tensors (the replaced 3x3 convs and their BNs, '
                 'the classifier, anything outside an mmpretrain/mmdet backbone)')
    lines += [f'  {k}' for k in report['dropped']]
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='ResNet checkpoint (torchvision, timm .pth/.bin/.safetensors, mmpretrain or '
                        'mmdet): a path or an http(s):// URL')
    parser.add_argument('dst', help='where to save the BoTNet checkpoint')
    parser.add_argument('--arch', default='50', help="BoTNet arch, e.g. 50, 101, s1-50 (default: 50)")
    parser.add_argument('--img-size', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'),
                        help='img_size of the target BoTNet (sizes the relative tables; default: 224 224)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the attention layers\' init')
    add_source_args(parser)
    args = parser.parse_args()

    from mmvit_hybrid.models import BoTNet
    torch.manual_seed(args.seed)
    botnet = BoTNet(arch=args.arch, img_size=tuple(args.img_size))
    botnet.init_weights()
    with local_source(args.src, args.cache_dir, progress=not args.no_progress) as path:
        state, report = convert(load_source(path), botnet)
    save_outputs([(args.dst, {'state_dict': state, 'meta': dict(
        converted_from=args.src, botnet_arch=args.arch, img_size=list(args.img_size), report=report)})])
    print(format_report(report))
    print(f'saved {args.dst}; load it with init_cfg=dict(type="Pretrained", checkpoint="{args.dst}")')


if __name__ == '__main__':
    run_cli(main, 'resnet_to_botnet')
