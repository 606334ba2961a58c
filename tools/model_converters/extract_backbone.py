"""Extract the backbone of a runner checkpoint into a backbone-only file for det/seg configs.

DMFormer has no published weights: its ImageNet config (``configs/dmformer/dmformer_s_in1k.py``
...) trains the backbone here, and its det/seg configs load
``checkpoints/dmformer_<s|m|l>_in1k_backbone.pth``, which this tool makes from the runner
checkpoint of that training::

    python tools/model_converters/extract_backbone.py \
        work_dirs/dmformer_s_in1k/epoch_300.pth checkpoints/dmformer_s_in1k_backbone.pth

The output is keyed as the backbone-only files of ``dsnet_to_mmvit.py``: ``{'state_dict':
{'backbone.<name>': tensor}, 'meta': {...}}``, for ``init_cfg=dict(type='Pretrained',
checkpoint=..., prefix='backbone.')``. What the runner saved under ``state_dict`` is taken: with
mmengine's ``EMAHook`` those are already the EMA weights (the hook swaps them in before saving).
A ``module.`` (DDP) prefix is removed; every key outside ``backbone.`` (head, neck,
data preprocessor) is dropped and counted. The runner checkpoint (numpy and mmengine objects in
``meta``/``message_hub``) is read with ``weights_only=True`` through
:func:`mmvit_hybrid.utils.checkpoint.load_from_local`, not mmengine's loader, which fails on it
under torch >= 2.6. SRC may also be an ``http(s)://`` URL (``checkpoint_source.py``). Errors end
the tool with one line and leave no output file.
"""
import argparse
import os
import sys
from collections import OrderedDict
from typing import Tuple

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # checkpoint_source.py (URL sources, atomic outputs) is shared by the converters
    sys.path.insert(0, _HERE)
from checkpoint_source import add_source_args, local_source, run_cli, save_outputs  # noqa: E402

META_TYPES = (str, int, float, bool)


def extract_backbone(checkpoint: dict, prefix: str = 'backbone.') -> Tuple['OrderedDict[str, torch.Tensor]', list]:
    """Return ``(the prefix's tensors under their full keys, the dropped keys)``.

    Args:
        checkpoint (dict): A runner checkpoint (``{'state_dict': ..., 'meta': ...}``) or a bare
            state dict.
        prefix (str): The backbone's key prefix. Defaults to ``'backbone.'``.

    Raises:
        ValueError: not a dict of tensors, or no key starts with ``prefix``.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f'extract_backbone: the file holds a {type(checkpoint).__name__}, not a checkpoint dict')
    state = checkpoint['state_dict'] if isinstance(checkpoint.get('state_dict'), dict) else checkpoint
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    backbone = OrderedDict((k, v) for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor))
    if not backbone:
        raise ValueError(f'extract_backbone: no {prefix!r} tensors in the checkpoint (e.g. keys {sorted(state)[:4]}); '
                         'expected a runner checkpoint of a model with a backbone, such as '
                         'configs/dmformer/dmformer_s_in1k.py writes')
    return backbone, [k for k in state if k not in backbone]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='runner checkpoint (.pth from tools/train.py): a path or an http(s):// URL')
    parser.add_argument('dst', help='output backbone-only checkpoint, e.g. checkpoints/dmformer_s_in1k_backbone.pth')
    parser.add_argument('--prefix', default='backbone.', help="the backbone's key prefix (default: backbone.)")
    add_source_args(parser)
    args = parser.parse_args()

    from mmvit_hybrid.utils.checkpoint import load_from_local
    with local_source(args.src, args.cache_dir, progress=not args.no_progress) as path:
        checkpoint = load_from_local(path, map_location='cpu')
        backbone, dropped = extract_backbone(checkpoint, args.prefix)
    source_meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else {}
    meta = dict(extracted_from=args.src, prefix=args.prefix,
                **{k: v for k, v in source_meta.items() if isinstance(v, META_TYPES) and k != 'prefix'})
    save_outputs([(args.dst, {'state_dict': backbone, 'meta': meta})])
    dropped_heads = sorted({k.split('.')[0] for k in dropped})
    print(f'saved {args.dst}: {len(backbone)} {args.prefix}* tensors; dropped {len(dropped)} other entries '
          f'({", ".join(dropped_heads) or "none"})')
    print(f'det/seg: model.backbone.init_cfg=dict(type="Pretrained", checkpoint="{args.dst}", '
          f'prefix="{args.prefix}")')


if __name__ == '__main__':
    run_cli(main, 'extract_backbone')
