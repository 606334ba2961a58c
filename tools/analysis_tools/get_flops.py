"""Parameters and FLOPs of a config's model (backbone alone or the whole detector / segmentor /
classifier) at a given input size.

Counts with :func:`mmvit_hybrid.utils.count_flops` (torch's ``FlopCounterMode`` plus this package's
formulas for CPU SDPA and the fused outlook-attention op), which sees every matmul, convolution,
einsum and scaled-dot-product attention; mmengine's ``get_model_complexity_info`` misses
unfold/fold, functional matmuls and SDPA (``--compare-mmengine`` prints its number next to ours).

Reported: ``FLOPs`` (2 per multiply-add, torch's convention) and ``MACs`` (multiply-adds, what
papers and OpenMMLab's ``get_flops.py`` call "FLOPs"). Element-wise ops (norms, activations,
softmax, bias adds) are not counted, as in those tools.

Examples:
    python tools/analysis_tools/get_flops.py configs/volo/volo_d1_in1k.py --shape 224
    python tools/analysis_tools/get_flops.py configs/botnet/upernet_botnet50_ade20k.py --shape 512 512
    python tools/analysis_tools/get_flops.py configs/dsnet/mask_rcnn_dsnet_t_coco.py --shape 800 1216 --backbone-only
"""
import argparse
import importlib
import json
import os.path as osp
import sys
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

from mmvit_hybrid.utils.complexity import count_flops, count_params, format_count
from mmvit_hybrid.utils.config_utils import strip_pretrained

SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Load a config file with a clear error for a missing path."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'get_flops: config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(cfg: Config) -> Tuple[torch.nn.Module, str]:
    """Build ``cfg.model`` in the config's ``default_scope`` (pretrained loading stripped).

    Returns:
        tuple: (model in eval mode, scope name).
    """
    scope = cfg.get('default_scope', 'mmdet')
    if scope not in SCOPES:
        raise ValueError(f'get_flops: default_scope {scope!r} is not one of {SCOPES}')
    model_cfg = cfg.model.copy() if hasattr(cfg.model, 'copy') else dict(cfg.model)
    strip_pretrained(model_cfg)
    if scope == 'mmpretrain' and 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
        model_cfg['data_preprocessor'] = cfg.data_preprocessor
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(model_cfg)
    return model.eval(), scope


def parse_shape(shape: Sequence[int]) -> Tuple[int, int]:
    """``[S]`` -> (S, S); ``[H, W]`` -> (H, W); anything else raises."""
    shape = list(shape)
    if len(shape) == 1:
        shape = shape * 2
    if len(shape) != 2 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f'get_flops: --shape takes one or two positive ints (S or H W), got {shape}')
    return shape[0], shape[1]


def model_forward(model: torch.nn.Module, scope: str, batch: int, h: int, w: int,
                  backbone_only: bool) -> Tuple[torch.nn.Module, Any, Callable]:
    """The module to count, its inputs and ``forward(module, inputs)``.

    The whole model runs ``mode='tensor'`` (no post-processing, no loss) on a seeded random
    batch, the data preprocessor excluded (normalisation is element-wise); detectors get data
    samples with the image's meta information (the RPN needs ``img_shape``).
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, h, w, generator=gen)
    if backbone_only:
        if not hasattr(model, 'backbone'):
            raise ValueError(f'get_flops: {type(model).__name__} has no backbone attribute')
        return model.backbone, x, lambda m, inp: m(inp)
    samples = None
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        meta = dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.),
                    batch_input_shape=(h, w))
        samples = [DetDataSample(metainfo=meta) for _ in range(batch)]
    elif scope == 'mmseg':
        from mmseg.structures import SegDataSample
        meta = dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w), batch_input_shape=(h, w))
        samples = [SegDataSample(metainfo=meta) for _ in range(batch)]
    return model, x, lambda m, inp: m(inp, samples, mode='tensor')


def mmengine_flops(module: torch.nn.Module, x: torch.Tensor) -> Optional[float]:
    """mmengine's count (its "flops" are MACs), or None if its jit tracing fails."""
    try:
        from mmengine.analysis import FlopAnalyzer
        analyzer = FlopAnalyzer(module, (x, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return float(analyzer.total())
    except Exception as err:  # noqa: BLE001  (report, do not fail the tool)
        print(f'mmengine FlopAnalyzer failed: {type(err).__name__}: {err}', file=sys.stderr)
        return None


def get_flops(config: str, shape: Sequence[int] = (224, ), batch: int = 1, backbone_only: bool = False,
              depth: int = 3, cfg_options: Optional[dict] = None, compare_mmengine: bool = False) -> Dict:
    """Params and FLOPs of the config's model.

    Args:
        config (str): Config file path.
        shape (Sequence[int]): Input size, ``[S]`` or ``[H, W]``. Defaults to (224, ).
        batch (int): Batch size. Defaults to 1.
        backbone_only (bool): Count ``model.backbone`` only. Defaults to False.
        depth (int): Module depth of the per-module breakdown. Defaults to 3.
        cfg_options (dict, optional): Overrides merged into the config.
        compare_mmengine (bool): Also run mmengine's ``FlopAnalyzer``. Defaults to False.

    Returns:
        dict: ``params``, ``backbone_params``, ``flops``, ``macs``, ``per_module`` (FLOPs),
        the input shape and optionally ``mmengine_macs``.
    """
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f'get_flops: batch must be a positive int, got {batch!r}')
    h, w = parse_shape(shape)
    cfg = load_config(config, cfg_options)
    model, scope = build_model(cfg)
    module, x, forward = model_forward(model, scope, batch, h, w, backbone_only)
    flops, per_module = count_flops(module, inputs=x, forward=forward, by_module=True, depth=depth)
    result = dict(config=config, scope=scope, input_shape=[batch, 3, h, w], backbone_only=backbone_only,
                  params=count_params(module),
                  backbone_params=count_params(model.backbone) if hasattr(model, 'backbone') else None,
                  flops=flops, macs=flops // 2, per_module=per_module)
    if compare_mmengine:
        # FlopAnalyzer calls module(x): the backbone, or a classifier (mode='tensor' by default)
        result['mmengine_macs'] = mmengine_flops(module, x) if backbone_only or scope == 'mmpretrain' else None
    return result


def format_result(result: Dict) -> str:
    """Human-readable report."""
    b, c, h, w = result['input_shape']
    lines = [
        f"config:        {result['config']} (scope {result['scope']})",
        f"model:         {'backbone only' if result['backbone_only'] else 'whole model, mode=tensor'}",
        f'input shape:   ({b}, {c}, {h}, {w})',
        f"params:        {format_count(result['params'])} ({result['params']:,})",
    ]
    if result['backbone_params'] is not None and not result['backbone_only']:
        lines.append(f"  backbone:    {format_count(result['backbone_params'])} ({result['backbone_params']:,})")
    lines += [
        f"FLOPs:         {format_count(result['flops'])} (2 per multiply-add; {result['flops']:,})",
        f"MACs:          {format_count(result['macs'])} (what papers call FLOPs; {result['macs']:,})",
    ]
    if result.get('mmengine_macs') is not None:
        lines.append(f"mmengine MACs: {format_count(result['mmengine_macs'])} (FlopAnalyzer, misses SDPA/unfold/fold)")
    lines.append('per module (GMACs):')
    for name, flops in result['per_module'].items():
        if name != 'Global':
            lines.append(f'  {name:<40s} {flops / 2e9:10.4f}')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Params and FLOPs of a config\'s model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs='+', default=[224], help='input size: S or H W (default 224)')
    parser.add_argument('--batch', type=int, default=1, help='batch size (default 1)')
    parser.add_argument('--backbone-only', action='store_true', help='count the backbone alone')
    parser.add_argument('--depth', type=int, default=3, help='module depth of the breakdown (default 3)')
    parser.add_argument('--compare-mmengine', action='store_true',
                        help="also print mmengine's FlopAnalyzer count (backbone / classifier only)")
    parser.add_argument('--json', action='store_true', help='print the result as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    result = get_flops(args.config, args.shape, args.batch, args.backbone_only, args.depth, args.cfg_options,
                       args.compare_mmengine)
    print(json.dumps(result, indent=1) if args.json else format_result(result))
    return result


if __name__ == '__main__':
    main()
