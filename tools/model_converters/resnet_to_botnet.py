"""Turn an ImageNet ResNet checkpoint into a BoTNet checkpoint of the same depth.

BoTNet's conv layers are ResNet's, under the same names (torchvision and mmdet/mmpretrain
``ResNet`` alike), so every tensor is copied by name. Only the attention layers that replace the
3x3 convs of the last c5 blocks (``layer4.{j}.conv2.qkv.weight``, ``.rel_pos_h``, ``.rel_pos_w``)
have no ResNet counterpart, and the BN after each of them (``layer4.{j}.bn2``) would keep the
statistics of the 3x3 conv it followed in the ResNet: both keep BoTNet's default initialisation
(seeded). The ResNet's 3x3 convs and BNs there, and its classifier (``fc.*`` / ``head.*``), are
dropped. The report lists
exactly these tensors. Anything else that does not match (another depth, another layout) is an
error that names the keys. The result loads strictly with
``init_cfg=dict(type='Pretrained', checkpoint=DST)``.

Usage:
    python tools/model_converters/resnet_to_botnet.py resnet50.pth botnet50_from_r50.pth \
        --arch 50 --img-size 1024 1024
"""
import argparse
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch

HEAD_KEYS = re.compile(r'^(fc|head)\.')


def strip_prefix(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Accept torchvision (plain), mmdet/mmpretrain (``state_dict``, ``backbone.``) and DDP
    (``module.``) layouts; return backbone keys in torchvision naming."""
    state_dict = state_dict.get('state_dict', state_dict.get('model', state_dict))
    state_dict = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
    return state_dict


def convert(resnet_state: Dict[str, torch.Tensor],
            botnet: torch.nn.Module) -> Tuple['OrderedDict[str, torch.Tensor]', Dict[str, List[str]]]:
    """Fill ``botnet``'s state dict from ``resnet_state``.

    Returns the full BoTNet state dict and a report with the keys ``loaded`` (copied from the
    ResNet), ``new`` (attention tensors kept at BoTNet's init) and ``dropped`` (ResNet tensors
    without a place: replaced 3x3 convs and the classifier). Raises ValueError on any other
    mismatch.
    """
    resnet_state = strip_prefix(resnet_state)
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
            'the ResNet depth (50/101/152/200), or a torchvision/mmdet/mmpretrain ResNet (not ResNet-D/V1c, '
            'whose stem differs).')
    loaded = [k for k in target if k in resnet_state and k not in new]
    shapes = [f'{k}: {tuple(resnet_state[k].shape)} vs {tuple(target[k].shape)}' for k in loaded
              if resnet_state[k].shape != target[k].shape]
    if shapes:
        raise ValueError(f'resnet_to_botnet: tensors of other shapes than BoTNet expects: {shapes[:4]}; '
                         'check --arch and the number of input channels')
    state = OrderedDict((k, v if k in new else resnet_state[k].to(v.dtype)) for k, v in target.items())
    return state, dict(loaded=loaded, new=new, dropped=dropped)


def format_report(report: Dict[str, List[str]]) -> str:
    lines = [f'copied from the ResNet: {len(report["loaded"])} tensors (every other conv/BN layer of the stem '
             'and of layer1..layer4, the shortcut projections included)',
             f'newly initialised (BoTNet default init): {len(report["new"])} tensors']
    lines += [f'  {k}' for k in report['new']]
    lines.append(f'dropped from the ResNet: {len(report["dropped"])} tensors')
    lines += [f'  {k}' for k in report['dropped']]
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='ResNet checkpoint (torchvision, mmdet or mmpretrain)')
    parser.add_argument('dst', help='where to save the BoTNet checkpoint')
    parser.add_argument('--arch', default='50', help="BoTNet arch, e.g. 50, 101, s1-50 (default: 50)")
    parser.add_argument('--img-size', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'),
                        help='img_size of the target BoTNet (sizes the relative tables; default: 224 224)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the attention layers\' init')
    args = parser.parse_args()

    from mmvit_hybrid.models import BoTNet
    torch.manual_seed(args.seed)
    botnet = BoTNet(arch=args.arch, img_size=tuple(args.img_size))
    botnet.init_weights()
    source = torch.load(args.src, map_location='cpu', weights_only=True)
    state, report = convert(source, botnet)
    torch.save({'state_dict': state, 'meta': dict(
        converted_from=args.src, botnet_arch=args.arch, img_size=list(args.img_size), report=report)}, args.dst)
    print(format_report(report))
    print(f'saved {args.dst}; load it with init_cfg=dict(type="Pretrained", checkpoint="{args.dst}")')


if __name__ == '__main__':
    main()
