"""Every backbone's cost at detection scale, side by side: one Mask R-CNN training step.

For each row (a Mask R-CNN config: this package's backbones, and mmdet's own ResNet-50 and
Swin-T configs from mmdet's ``.mim`` folder) in one process:

* the model is built from its config (pretrained loading stripped, ``init_weights()``, train
  mode), batch 1, one 800x1344 image (mmdet's largest landscape batch for the 1333x800 resize)
  with 5 ground-truth boxes and masks (``mmdet.testing.demo_mm_inputs``, seeded), passed through
  the config's data preprocessor;
* a step is ``model(**data, mode='loss')``, the summed losses' backward, gradients dropped (no
  optimizer update), with the torch and numpy RNGs re-seeded so every step samples the same RoIs;
* warm-up step (untimed): run under ``torch.profiler`` (``mmvit_hybrid.utils.cpu_allocator_peak_mib``:
  the allocator's peak above the step's start, i.e. activations, gradients and temporaries) and
  under ``mmvit_hybrid.utils.count_flops`` (FLOPs of the whole step, forward + backward; torch's
  convolution-backward formula corrected for grouped convolutions, see
  :func:`grouped_conv_backward_flop`);
* backbone + neck forward GMACs (eval mode, the same image), counted as
  ``tools/analysis_tools/get_flops.py`` counts;
* timed steps: ``--iters`` rounds, models interleaved within each round (A, B, C, ..., A, B, C, ...),
  so load changes on this shared machine hit every row alike; the median per row is reported,
  with the load average (``uptime``) before every round;
* ratios to Swin-T (time, step FLOPs, and time per FLOP). A row whose time is more than
  ``--flag-ratio`` x Swin-T's time per FLOP (i.e. > 1.5x Swin-T's time at similar FLOPs) is
  flagged and profiled (``torch.profiler``, top ops by self CPU time) unless ``--no-profile``.

Examples:
    python benchmarks/det_scale.py --iters 2 --threads 2            # every row (benchmarks/README.md)
    python benchmarks/det_scale.py --rows swin_t dsnet_s dsnet_s_dsfpn --iters 2
    python benchmarks/det_scale.py --rows swin_t volo_d1 --profile volo_d1
"""
import argparse
import copy
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from mmengine.config import DictAction

ROOT = Path(__file__).resolve().parents[1]

# row -> config; 'mmdet::' paths are mmdet's own configs (installed under mmdet/.mim/configs)
ROWS = {
    'r50': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    'swin_t': 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    'dsnet_t': 'configs/dsnet/mask_rcnn_dsnet_t_coco.py',
    'dsnet_t_dsfpn': 'configs/dsnet/mask_rcnn_dsnet_t_dsfpn_coco.py',
    'dsnet_s': 'configs/dsnet/mask_rcnn_dsnet_s_coco.py',
    'dsnet_s_dsfpn': 'configs/dsnet/mask_rcnn_dsnet_s_dsfpn_coco.py',
    'dmformer_s': 'configs/dmformer/mask_rcnn_dmformer_s_coco.py',
    'volo_d1': 'configs/volo/mask_rcnn_volo_d1_coco.py',
    'bot50': 'configs/botnet/mask_rcnn_botnet50_coco.py',
}
BASELINE = 'swin_t'


def config_path(spec: str) -> str:
    """A row's config file on disk (``mmdet::x`` -> mmdet's installed ``.mim/configs/x``)."""
    if spec.startswith('mmdet::'):
        import mmdet
        path = Path(mmdet.__file__).parent / '.mim' / 'configs' / spec[len('mmdet::'):]
    else:
        path = ROOT / spec
    if not path.is_file():
        raise FileNotFoundError(f'det_scale: config {spec} not found at {path}')
    return str(path)


def uptime() -> str:
    try:
        return subprocess.run(['uptime'], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'load average: ' + ', '.join(f'{x:.2f}' for x in os.getloadavg())


def build(spec: str, cfg_options: Optional[dict] = None):
    """Detector of a config in train mode, randomly initialised (pretrained loading stripped),
    with ``cfg_options`` merged into the config."""
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS

    from mmvit_hybrid.utils.config_utils import strip_pretrained
    cfg = Config.fromfile(config_path(spec))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    strip_pretrained(cfg.model)
    init_default_scope('mmdet')
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init_weights report
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.train()


def make_batch(model, h: int, w: int):
    """Preprocessed batch of one seeded random image with 5 boxes and masks."""
    from mmdet.testing import demo_mm_inputs
    np.random.seed(0)
    packed = demo_mm_inputs(batch_size=1, image_shapes=[(3, h, w)], num_items=[5], num_classes=80,
                            with_mask=True)
    return model.data_preprocessor(packed, True)


def step(model, data):
    """One training step without the optimizer: loss forward, backward, gradients dropped."""
    torch.manual_seed(0)
    np.random.seed(0)
    losses = model(inputs=data['inputs'], data_samples=copy.deepcopy(data['data_samples']), mode='loss')
    total, _ = model.parse_losses(losses)
    total.backward()
    model.zero_grad(set_to_none=True)
    return total


def grouped_conv_backward_flop(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                               output_padding, groups, output_mask, out_shape=None, **kwargs) -> int:
    """torch's ``conv_backward_flop`` with the weight-gradient term of a grouped convolution
    divided by ``groups``.

    torch (2.13) counts the weight gradient as an ungrouped convolution of the transposed input
    with the transposed output gradient, ``Cin x Cout x k^2 x H'W'`` multiply-adds, while a
    convolution with ``groups=g`` has ``Cin / g x Cout x k^2 x H'W'``: a depthwise convolution's
    weight gradient is counted ``C`` times over (DMFormer-S's step: 393 GFLOPs for a 14 GFLOPs
    forward at 256x320 before this correction). The input-gradient term uses the grouped weight
    shape and is right.
    """
    from torch.utils.flop_counter import conv_backward_flop
    conv_backward_flop = conv_backward_flop.__wrapped__  # torch's formula on shapes, without its shape_wrapper
    args = (grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding, groups)
    total = conv_backward_flop(*args, output_mask, out_shape=out_shape)
    if groups == 1 or not output_mask[1]:
        return total
    weight = conv_backward_flop(*args, [False, True, False], out_shape=out_shape)
    return total - weight + weight // groups


def step_flops(model, data) -> int:
    """FLOPs of one step (forward + backward): torch's FlopCounterMode with this package's formulas
    and :func:`grouped_conv_backward_flop` for ``aten.convolution_backward``."""
    from torch.utils.flop_counter import flop_registry, shape_wrapper

    from mmvit_hybrid.utils import count_flops

    def forward(m, d):
        torch.manual_seed(0)
        np.random.seed(0)
        return m(inputs=d['inputs'], data_samples=copy.deepcopy(d['data_samples']), mode='loss')
    key = torch.ops.aten.convolution_backward
    torch_formula = flop_registry[key]
    flop_registry[key] = shape_wrapper(grouped_conv_backward_flop)  # read when FlopCounterMode is made
    try:
        flops = count_flops(model, inputs=data, forward=forward, backward=True)
    finally:
        flop_registry[key] = torch_formula
    model.zero_grad(set_to_none=True)
    return flops


def feature_macs(model, data) -> int:
    """MACs of one eval-mode forward of backbone + neck (``extract_feat``) on the step's image,
    counted as ``tools/analysis_tools/get_flops.py`` counts (``mmvit_hybrid.utils.count_flops``)."""
    from mmvit_hybrid.utils import count_flops
    return count_flops(model, inputs=data['inputs'], forward=lambda m, x: m.extract_feat(x)) // 2


def profile_step(model, data, top: int):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        step(model, data)
    return prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=top)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Mask R-CNN training step at 800x1344 for every backbone')
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    parser.add_argument('--size', type=int, nargs=2, default=[800, 1344], metavar=('H', 'W'))
    parser.add_argument('--iters', type=int, default=3, help='timed rounds (default 3)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--flag-ratio', type=float, default=1.5,
                        help='flag rows above this x Swin-T time per step FLOP (default 1.5)')
    parser.add_argument('--profile', nargs='*', default=[], choices=list(ROWS),
                        help='also profile these rows (flagged rows are profiled anyway)')
    parser.add_argument('--no-profile', action='store_true', help='do not profile flagged rows')
    parser.add_argument('--top', type=int, default=15, help='profiler rows (default 15)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='overrides merged into every row\'s config, e.g. model.backbone.attn_drop_rate=0.')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error('--iters must be >= 1')
    rows = list(dict.fromkeys(args.rows))
    if BASELINE not in rows:
        rows.insert(0, BASELINE)  # the ratios need Swin-T in the same run
    torch.set_num_threads(args.threads)
    h, w = args.size
    import mmvit_hybrid  # noqa: F401  (registers the package's modules)

    print(f'# command: python benchmarks/det_scale.py {" ".join(sys.argv[1:] if argv is None else argv)}')
    from mmvit_hybrid.utils import cpu_name
    print(f'# machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, '
          f'{torch.get_num_threads()} torch threads')
    print(f'# uptime at start: {uptime()}', flush=True)

    models, data, info = {}, {}, {}
    for name in rows:
        t = time.perf_counter()
        models[name] = build(ROWS[name], args.cfg_options)
        data[name] = make_batch(models[name], h, w)
        flops = []
        from mmvit_hybrid.utils import count_params, cpu_allocator_peak_mib
        peak = cpu_allocator_peak_mib(lambda: flops.append(step_flops(models[name], data[name])))
        feat_macs = feature_macs(models[name], data[name])
        info[name] = dict(peak=peak, step_flops=flops[0], feat_macs=feat_macs, params=count_params(models[name]),
                          times=[])
        print(f'# {name}: built, warm-up step (profiled) and FLOPs in {time.perf_counter() - t:.0f} s; '
              f'peak {peak:.0f} MiB, step {flops[0] / 1e9:.0f} GFLOPs, backbone+neck forward '
              f'{feat_macs / 1e9:.1f} GMACs', flush=True)

    for r in range(args.iters):
        print(f'# round {r + 1}/{args.iters}, uptime: {uptime()}', flush=True)
        for name in rows:
            t = time.perf_counter()
            step(models[name], data[name])
            info[name]['times'].append(time.perf_counter() - t)
            print(f'#   {name}: {info[name]["times"][-1]:.2f} s', flush=True)
    print(f'# uptime at end: {uptime()}')

    base = info[BASELINE]
    base_t = statistics.median(base['times'])
    print()
    print(f'| row | config | params | backbone+neck GMACs (fwd) | step GFLOPs (fwd+bwd) | step s, median '
          f'of {args.iters} (min-max) | peak MiB | time / Swin-T | step FLOPs / Swin-T | time per FLOP / Swin-T |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    flagged = []
    for name in rows:
        i = info[name]
        t = statistics.median(i['times'])
        tr, fr = t / base_t, i['step_flops'] / base['step_flops']
        flag = tr / fr > args.flag_ratio
        if flag:
            flagged.append(name)
        print(f'| {name}{" **(flagged)**" if flag else ""} | `{ROWS[name]}` | {i["params"] / 1e6:.1f}M | '
              f'{i["feat_macs"] / 1e9:.1f} | {i["step_flops"] / 1e9:.0f} | '
              f'{t:.2f} ({min(i["times"]):.2f}-{max(i["times"]):.2f}) | {i["peak"]:.0f} | {tr:.2f}x | {fr:.2f}x | '
              f'{tr / fr:.2f}x |')
    to_profile = list(dict.fromkeys(args.profile + ([] if args.no_profile else flagged)))
    for name in to_profile:
        print(f'\n# profile of one {name} step (torch.profiler, self CPU time), uptime: {uptime()}')
        print(profile_step(models[name], data[name], args.top))
    return info


if __name__ == '__main__':
    main()
