"""Convert the public DS-Net ImageNet weights into checkpoints of this package.

Two layouts are read, both of the reference model ``MixVisionTransformer`` (same module names):

* PaddleClas ``DSNet_{tiny,small,base}_pretrained.pdparams``: what ``paddle.save(state_dict)``
  writes, a pickle of numpy arrays plus one ``StructuredToParameterName@@`` dict. Linear weights are
  stored ``(in, out)`` and transposed here; BatchNorm statistics ``_mean``/``_variance`` become
  ``running_mean``/``running_var``. Read without paddle (a pickle reader that allows numpy only).
* SteveTsui/DS-Net ``.pth`` (DeiT layout: ``{'model': state_dict, 'model_ema': ..., 'optimizer':
  ..., 'args': ...}``), PyTorch names and layouts; ``--ema`` takes ``model_ema`` instead of ``model``.

The names map block for block (``patch_embed{k}.proj`` -> ``stages.{k-1}.downsample``,
``blocks{k}.{j}.pos_embed`` -> ``stages.{k-1}.blocks.{j}.cpe``, ``conv1``/``conv2`` ->
``proj_in``/``proj_out``, ...; :data:`BLOCK_RENAMES`), the arch is recognised from the block
counts. Two checkpoints are written:

* ``DST``: an mmpretrain ``ImageClassifier`` (``backbone.*`` for ``DSNet(out_indices=(3,))``,
  ``head.fc.*`` for ``LinearClsHead``), for ``load_from`` / ``tools/test.py`` with
  ``configs/dsnet/dsnet_*_in1k.py``;
* ``DST`` with ``_backbone`` before the suffix (or ``--backbone-out``): the ``backbone.*`` tensors
  only, for det/seg configs: ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.

The report lists the tensors copied, newly initialised (the BatchNorm ``num_batches_tracked``
counters a Paddle file does not have: 0) and dropped. Any other layout is an error naming the
layouts above.

SRC may be a URL (e.g. PaddleClas's
``https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_tiny_pretrained.pdparams``): it is downloaded into a cache folder first
(``checkpoint_source.py``). Errors end the tool with one line and leave no output file.

Usage:
    python tools/model_converters/dsnet_to_mmvit.py DSNet_tiny_pretrained.pdparams \
        checkpoints/dsnet_t_in1k.pth
"""
import argparse
import codecs
import collections
import importlib
import os
import pickle
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # checkpoint_source.py (URL sources, atomic outputs) is shared by the converters
    sys.path.insert(0, _HERE)
from checkpoint_source import add_source_args, local_source, run_cli, save_outputs  # noqa: E402

PADDLE_META_KEY = 'StructuredToParameterName@@'
LAYOUTS = ('a PaddleClas DSNet_*.pdparams file (paddle.save of the model state_dict: numpy arrays, '
           f'BN "_mean"/"_variance", a "{PADDLE_META_KEY}" entry), or a SteveTsui/DS-Net .pth checkpoint '
           '({"model": state_dict} with keys patch_embed1.proj.weight, blocks1.0.pos_embed.weight, ..., head.weight)')
# reference block module -> ours (DualStreamBlock); the rest of the key (weight, bias, ...) stays
BLOCK_RENAMES = {
    'pos_embed': 'cpe', 'norm1': 'norm1', 'conv1': 'proj_in', 'conv2': 'proj_out',
    'norm_conv1': 'local_norm', 'conv': 'local_dwconv',
    'norm_sa1': 'global_norm', 'channel_up': 'global_qkv',
    'norm_conv2': 'local_co_norm', 'cross_channel_up_conv': 'local_co_qkv',
    'norm_sa2': 'global_co_norm', 'cross_channel_up_sa': 'global_co_qkv',
    'fuse_channel_conv': 'local_co_proj', 'fuse_channel_sa': 'global_co_proj',
    'norm2': 'norm2', 'mlp.fc1': 'ffn.0', 'mlp.fc2': 'ffn.2',
}
# nn.Linear modules of the reference: Paddle stores their weights transposed
LINEAR_MODULES = ('channel_up', 'cross_channel_up_sa', 'fuse_channel_conv', 'fuse_channel_sa', 'head')
BN_MODULES = ('norm1', 'norm2', 'norm_conv1', 'norm_conv2')  # and the final ``norm``
PADDLE_BN = {'_mean': 'running_mean', '_variance': 'running_var'}
_BLOCK_KEY = re.compile(r'blocks([1-4])\.(\d+)\.(' + '|'.join(sorted(map(re.escape, BLOCK_RENAMES), key=len,
                                                                    reverse=True)) + r')\.(\w+)')
_EMBED_KEY = re.compile(r'patch_embed([1-4])\.proj\.(weight|bias)')


# ------------------------------------------------------------------ reading
class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asks for an object outside the numpy allow-list."""


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickle numpy arrays, dicts and scalars; refuse every other global (no code from the file)."""
    _MODULES = {'numpy.core.multiarray': 'multiarray', 'numpy._core.multiarray': 'multiarray',
                'numpy.core.numeric': 'numeric', 'numpy._core.numeric': 'numeric'}
    _ALLOWED = {('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype,
                ('_codecs', 'encode'): codecs.encode, ('collections', 'OrderedDict'): collections.OrderedDict}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[module, name]
        if module in self._MODULES and name in ('_reconstruct', 'scalar', '_frombuffer'):
            core = np._core if hasattr(np, '_core') else np.core
            return getattr(importlib.import_module(f'{core.__name__}.{self._MODULES[module]}'), name)
        if module == 'numpy.dtypes' and name.endswith('DType'):
            return getattr(np.dtypes, name)
        raise RefusedGlobal(
            f'dsnet_to_mmvit: the file needs {module}.{name} to be read; a paddle.save state dict holds only '
            f'numpy arrays. Expected {LAYOUTS}')


def load_source(path: str) -> dict:
    """Read a ``.pdparams`` pickle (numpy only) or a torch checkpoint (``weights_only``, through
    this package's loader, which also allows numpy; DeiT's pickled ``argparse.Namespace`` too)."""
    with open(path, 'rb') as f:
        magic = f.read(2)
    if magic != b'PK':  # torch.save writes a zip archive, paddle.save a plain pickle
        with open(path, 'rb') as f:
            try:
                return _NumpyUnpickler(f).load()
            except RefusedGlobal:
                raise
            except Exception as err:
                raise ValueError(f'dsnet_to_mmvit: cannot read {path} as a pickle ({err}). Expected {LAYOUTS}') from err
    from mmvit_hybrid.utils.checkpoint import load_from_local
    with torch.serialization.safe_globals([argparse.Namespace]):  # DeiT pickles its args
        return load_from_local(path, map_location='cpu')


def detect_layout(source: dict, ema: bool = False) -> Tuple[str, Dict[str, object], List[str]]:
    """Return ``('paddle' | 'steve', state_dict, dropped top-level entries)`` or raise ValueError."""
    if not isinstance(source, dict):
        raise ValueError(f'dsnet_to_mmvit: the file holds a {type(source).__name__}, not a dict. Expected {LAYOUTS}')
    if PADDLE_META_KEY in source or any(k.endswith('._mean') for k in source):
        state = {k: v for k, v in source.items() if k != PADDLE_META_KEY}
        return 'paddle', state, [PADDLE_META_KEY] if PADDLE_META_KEY in source else []
    wrapper = 'model_ema' if ema else next((w for w in ('model', 'state_dict') if isinstance(source.get(w), dict)),
                                           None)
    if ema and not isinstance(source.get('model_ema'), dict):
        raise ValueError('dsnet_to_mmvit: --ema was given but the checkpoint has no "model_ema" entry '
                         f'(top-level keys: {sorted(source)[:8]})')
    state = source[wrapper] if wrapper else source
    dropped = [k for k in source if k != wrapper] if wrapper else []
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    if any(k.startswith('backbone.stages.') for k in state):
        raise ValueError('dsnet_to_mmvit: this checkpoint is already in this package\'s layout '
                         '(backbone.stages.*); load it directly')
    if not any(_BLOCK_KEY.fullmatch(k) for k in state):
        raise ValueError(f'dsnet_to_mmvit: not a DS-Net checkpoint (e.g. keys {sorted(state)[:4]}). '
                         f'Expected {LAYOUTS}')
    return 'steve', state, dropped


# ------------------------------------------------------------------ conversion
def convert_key(key: str) -> str:
    """One reference key (torch naming) -> this package's ImageClassifier key; KeyError otherwise."""
    m = _BLOCK_KEY.fullmatch(key)
    if m:
        stage, block, module, rest = int(m.group(1)) - 1, m.group(2), m.group(3), m.group(4)
        return f'backbone.stages.{stage}.blocks.{block}.{BLOCK_RENAMES[module]}.{rest}'
    m = _EMBED_KEY.fullmatch(key)
    if m:
        return f'backbone.stages.{int(m.group(1)) - 1}.downsample.{m.group(2)}'
    if key.startswith('norm.'):
        return 'backbone.' + key
    if key in ('head.weight', 'head.bias'):
        return 'head.fc.' + key[len('head.'):]
    raise KeyError(key)


def _to_torch_naming(key: str, value, layout: str) -> Tuple[str, torch.Tensor]:
    """Paddle -> torch conventions for one tensor: BN statistic names, Linear transposes."""
    tensor = torch.as_tensor(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f'dsnet_to_mmvit: {key} is a {type(value).__name__}, not an array')
    if layout != 'paddle':
        return key, tensor
    module, _, name = key.rpartition('.')
    if name in PADDLE_BN:
        return f'{module}.{PADDLE_BN[name]}', tensor
    if name == 'weight' and module.rpartition('.')[2] in LINEAR_MODULES:
        if tensor.dim() != 2:
            raise ValueError(f'dsnet_to_mmvit: {key} should be a 2-D Linear weight, got shape {tuple(tensor.shape)}')
        return key, tensor.t().contiguous()
    return key, tensor


def infer_arch(state: Dict[str, torch.Tensor]) -> str:
    """Recognise tiny/small/base from the number of blocks per stage."""
    from mmvit_hybrid.models import DSNet
    depths = tuple(1 + max((int(m.group(2)) for m in map(_BLOCK_KEY.fullmatch, state) if m and m.group(1) == str(s)),
                           default=-1) for s in range(1, 5))
    for name in ('tiny', 'small', 'base'):
        if tuple(DSNet.arch_zoo[name]['depths']) == depths:
            return name
    raise ValueError(f'dsnet_to_mmvit: blocks per stage {depths} match no DS-Net arch '
                     f'(tiny (2, 2, 4, 1), small (3, 4, 8, 3), base (3, 4, 28, 3))')


def convert(source: dict, ema: bool = False) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Reference checkpoint (either layout) -> (ImageClassifier state dict, report).

    The report has ``layout``, ``arch``, ``num_classes`` and the key lists ``copied`` (source key
    -> our key), ``new`` (our keys set here) and ``dropped`` (source entries not used). The result
    is checked against ``DSNet(arch)`` built on the meta device: every key and shape must agree.
    """
    layout, source_state, dropped = detect_layout(source, ema)
    converted, copied, unknown = OrderedDict(), OrderedDict(), []
    for src_key, value in source_state.items():
        key, tensor = _to_torch_naming(src_key, value, layout)
        try:
            copied[src_key] = convert_key(key)
        except KeyError:
            unknown.append(src_key)
            continue
        converted[copied[src_key]] = tensor
    if unknown:
        raise ValueError(f'dsnet_to_mmvit: {len(unknown)} keys are not DS-Net parameters (e.g. {unknown[:5]}); '
                         f'expected {LAYOUTS} (the overlap_embed / conv_ffn variants of PaddleClas are not '
                         'released and not supported)')
    arch = infer_arch(source_state)
    from mmvit_hybrid.models import DSNet
    with torch.device('meta'):
        target = {f'backbone.{k}': v for k, v in DSNet(arch=arch, out_indices=(3, )).state_dict().items()}
    new = [k for k in target if k not in converted and k.endswith('.num_batches_tracked')]
    for key in new:
        converted[key] = torch.tensor(0, dtype=torch.long)
    missing = [k for k in target if k not in converted]
    shapes = [f'{k}: {tuple(converted[k].shape)} vs {tuple(v.shape)}' for k, v in target.items()
              if k in converted and converted[k].shape != v.shape]
    if missing or shapes:
        raise ValueError(f'dsnet_to_mmvit: the checkpoint does not fill DSNet(arch={arch!r}): {len(missing)} '
                         f'tensors missing (e.g. {missing[:4]}), {len(shapes)} of other shapes (e.g. {shapes[:3]})')
    head = converted.get('head.fc.weight')
    if head is None or head.dim() != 2 or head.shape[1] != target['backbone.norm.weight'].shape[0]:
        raise ValueError('dsnet_to_mmvit: the checkpoint has no classifier head.weight of shape '
                         f'(num_classes, 512), got {None if head is None else tuple(head.shape)}')
    extra = [k for k in converted if k not in target and not k.startswith('head.fc.')]
    if extra:
        raise ValueError(f'dsnet_to_mmvit: keys without a place in DSNet(arch={arch!r}): {extra[:4]}')
    report = dict(layout=layout, arch=arch, num_classes=head.shape[0], copied=copied, new=new, dropped=dropped)
    return converted, report


def format_report(report: dict) -> str:
    names = dict(paddle='PaddleClas .pdparams', steve='SteveTsui/DS-Net (DeiT layout)')
    lines = [f'source: {names[report["layout"]]}, DSNet arch {report["arch"]!r}, '
             f'{report["num_classes"]} classes',
             f'copied: {len(report["copied"])} tensors (every parameter and BatchNorm statistic'
             + (', Linear weights transposed, _mean/_variance -> running_mean/running_var)'
                if report['layout'] == 'paddle' else ')')]
    lines += [f'  {src} -> {dst}' for src, dst in report['copied'].items()]
    lines.append(f'newly initialised: {len(report["new"])} tensors (BatchNorm counters the source does not '
                 'store, set to 0; unused with momentum BN and in eval)')
    lines += [f'  {k}' for k in report['new']]
    lines.append(f'dropped: {len(report["dropped"])} entries (not weights of the model)')
    lines += [f'  {k}' for k in report['dropped']]
    return '\n'.join(lines)


def backbone_path(dst: str) -> str:
    path = Path(dst)
    return str(path.with_name(f'{path.stem}_backbone{path.suffix or ".pth"}'))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='PaddleClas .pdparams or SteveTsui/DS-Net .pth: a path or an http(s):// URL')
    parser.add_argument('dst', help='output classifier checkpoint (mmpretrain ImageClassifier keys)')
    parser.add_argument('--backbone-out', help='output of the backbone.* tensors only '
                        '(default: DST with _backbone before the suffix)')
    parser.add_argument('--ema', action='store_true', help="take a DeiT-style checkpoint's model_ema weights")
    parser.add_argument('-q', '--quiet', action='store_true', help='print the counts only, not every key')
    add_source_args(parser)
    args = parser.parse_args()

    with local_source(args.src, args.cache_dir, progress=not args.no_progress) as path:
        state, report = convert(load_source(path), ema=args.ema)
    text = format_report(report)
    print('\n'.join(line for line in text.splitlines() if not (args.quiet and line.startswith('  '))))
    meta = dict(converted_from=args.src, dsnet_arch=report['arch'], layout=report['layout'],
                num_classes=int(report['num_classes']))
    backbone = OrderedDict((k, v) for k, v in state.items() if k.startswith('backbone.'))
    outputs = [(args.dst, state), (args.backbone_out or backbone_path(args.dst), backbone)]
    save_outputs([(path, {'state_dict': tensors, 'meta': meta}) for path, tensors in outputs])
    print(f'saved {outputs[0][0]} ({len(state)} tensors): load_from / tools/test.py with '
          f'configs/dsnet/dsnet_{report["arch"][0]}_in1k.py')
    print(f'saved {outputs[1][0]} ({len(backbone)} tensors, head dropped): det/seg '
          f'model.backbone.init_cfg=dict(type="Pretrained", checkpoint="{outputs[1][0]}", prefix="backbone.")')


if __name__ == '__main__':
    run_cli(main, 'dsnet_to_mmvit')
