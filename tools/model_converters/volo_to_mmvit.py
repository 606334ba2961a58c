"""Convert an official sail-sg/volo checkpoint (``d1_224_84.2.pth.tar`` ...) or a timm ``volo_*``
state dict (``model.safetensors`` / ``pytorch_model.bin`` of ``timm/volo_d*.sail_in1k``) into an
mmpretrain ``ImageClassifier`` checkpoint of this package: ``backbone.*`` for
``VOLO(out_type='cls_and_tokens')`` and ``head.fc``/``head.aux_fc`` for ``VOLOHead``.

Both sources use the same names (timm ported the official model), so one table serves both. For
detection/segmentation, load the result with ``init_cfg=dict(type='Pretrained',
checkpoint=..., prefix='backbone.')``; the dense VOLO drops the classification part itself.

SRC may be a URL (the sail-sg release ``https://github.com/sail-sg/volo/releases/download/volo_1/
d1_224_84.2.pth.tar``, or a Hugging Face ``.../timm/volo_d1_224.sail_in1k/resolve/main/
model.safetensors``): it is downloaded into a cache folder first (``checkpoint_source.py``). Errors
end the tool with one line and leave no output file.

Usage:
    python tools/model_converters/volo_to_mmvit.py SRC DST
"""
import argparse
import os
import pickle
import re
import sys
from collections import OrderedDict

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # checkpoint_source.py (URL sources, atomic outputs) is shared by the converters
    sys.path.insert(0, _HERE)
from checkpoint_source import add_source_args, local_source, run_cli, save_outputs  # noqa: E402

# (official/timm pattern, this package's key); \1, \2 ... refer to the pattern's groups
_STEM = {0: 0, 3: 1, 6: 2}  # index in timm's patch_embed.conv Sequential -> ConvModule index (conv)
_BN = {1: 0, 4: 1, 7: 2}  # ... -> ConvModule index (bn)
_BLOCK_RENAMES = [('mlp.fc1.', 'ffn.layers.0.0.'), ('mlp.fc2.', 'ffn.layers.1.')]


def _rename_block(rest: str) -> str:
    for old, new in _BLOCK_RENAMES:
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def convert_key(key: str) -> str:
    """One official/timm key -> this package's key; KeyError for a key VOLO does not have."""
    m = re.fullmatch(r'patch_embed\.conv\.(\d+)\.(.+)', key)
    if m:
        idx, rest = int(m.group(1)), m.group(2)
        if idx in _STEM and rest == 'weight':
            return f'backbone.patch_embed.stem.{_STEM[idx]}.conv.weight'
        if idx in _BN:
            return f'backbone.patch_embed.stem.{_BN[idx]}.bn.{rest}'
        raise KeyError(key)
    if key.startswith('patch_embed.proj.'):
        return 'backbone.' + key
    if key in ('pos_embed', 'cls_token'):
        return 'backbone.' + key
    m = re.fullmatch(r'network\.(\d+)\.(.+)', key)
    if m:
        idx, rest = int(m.group(1)), m.group(2)
        if idx == 1:  # the Downsample between the outlookers and the transformers
            if not rest.startswith('proj.'):
                raise KeyError(key)
            return 'backbone.downsample.' + rest[len('proj.'):]
        stage = 0 if idx == 0 else idx - 1
        block, rest = rest.split('.', 1)
        return f'backbone.stages.{stage}.{block}.{_rename_block(rest)}'
    m = re.fullmatch(r'post_network\.(\d+)\.(.+)', key)
    if m:
        return f'backbone.cls_blocks.{m.group(1)}.{_rename_block(m.group(2))}'
    if key.startswith('norm.'):
        return 'backbone.' + key
    if key.startswith('head.'):
        return 'head.fc.' + key[len('head.'):]
    if key.startswith('aux_head.'):
        return 'head.aux_fc.' + key[len('aux_head.'):]
    raise KeyError(key)


def convert_volo(state_dict: dict) -> 'OrderedDict[str, torch.Tensor]':
    """Official/timm VOLO state dict -> ``ImageClassifier`` keys; raises on unknown keys.

    A ``state_dict`` or ``model`` wrapper and a ``module.`` prefix are removed.
    """
    for wrapper in ('state_dict', 'model'):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
            break
    converted, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        try:
            converted[convert_key(key)] = value
        except KeyError:
            unknown.append(key)
    if unknown:
        raise KeyError(f'volo_to_mmvit: {len(unknown)} keys are not VOLO parameters (e.g. {unknown[:5]}); '
                       'is this an official sail-sg/volo or timm volo_* checkpoint?')
    return converted


def load_source(path: str, trust: bool = False) -> dict:
    """Read a ``.safetensors`` file or a torch checkpoint (``weights_only`` unless ``trust``)."""
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    try:
        return torch.load(path, map_location='cpu', weights_only=not trust)
    except pickle.UnpicklingError as err:  # weights_only refuses checkpoints that pickle training arguments
        if trust:
            raise
        raise RuntimeError(f'volo_to_mmvit: {path} holds more than tensors ({type(err).__name__}); if you '
                           'trust the file, rerun with --trust to unpickle it') from err
    except Exception as err:  # not a torch file at all (e.g. a truncated zip archive)
        raise ValueError(f'volo_to_mmvit: cannot read {path} as a torch checkpoint ({err}); expected an official '
                         'sail-sg/volo .pth.tar or a timm volo_* .safetensors/.bin') from err


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official .pth.tar, timm .safetensors or .bin/.pth: a path or an http(s):// URL')
    parser.add_argument('dst', help='output .pth (mmpretrain ImageClassifier keys)')
    parser.add_argument('--trust', action='store_true', help='unpickle a checkpoint that holds non-tensor objects')
    add_source_args(parser)
    args = parser.parse_args()
    with local_source(args.src, args.cache_dir, progress=not args.no_progress) as path:
        state_dict = convert_volo(load_source(path, args.trust))
    save_outputs([(args.dst, {'state_dict': state_dict, 'meta': {'converted_from': args.src}})])
    print(f'converted {len(state_dict)} tensors: {args.src} -> {args.dst}')


if __name__ == '__main__':
    run_cli(main, 'volo_to_mmvit')
