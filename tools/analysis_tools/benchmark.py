"""Throughput, latency and peak memory of a config's model (backbone alone or the whole model).

Runs ``--warmup`` untimed and ``--iters`` timed steps on a seeded random batch and reports the
median latency, images/s (batch / median) and the peak memory of one step: on CUDA
``torch.cuda.max_memory_allocated`` growth over the step; on CPU the most bytes torch's allocator
held above the step's start (:func:`mmvit_hybrid.utils.cpu_allocator_peak_mib`, from
``torch.profiler``'s memory records; measured after the timed steps).

A step is a forward without grad (``--mode fwd``, eval mode) or a forward plus the backward of the
sum of the outputs (``--mode fwdbwd``, train mode). The whole model runs ``mode='tensor'`` (no
post-processing, no loss), like ``get_flops.py``.

Examples:
    python tools/analysis_tools/benchmark.py configs/volo/volo_d1_in1k.py --shape 224 --batch 8
    python tools/analysis_tools/benchmark.py configs/botnet/upernet_botnet50_ade20k.py --shape 512 \\
        --backbone-only --mode fwdbwd --amp bf16 --channels-last --device cuda
"""
import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from get_flops import build_model, load_config, model_forward, parse_shape  # noqa: E402

from mmengine.config import DictAction  # noqa: E402

from mmvit_hybrid.utils import cpu_allocator_peak_mib  # noqa: E402

AMP = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def _outputs(out):
    return [o for o in torch.utils._pytree.tree_leaves(out) if isinstance(o, torch.Tensor) and o.is_floating_point()]


def benchmark(config: str, shape=(224, ), batch: int = 1, backbone_only: bool = False, mode: str = 'fwd',
              amp: str = 'fp32', channels_last: bool = False, device: str = 'cpu', warmup: int = 2,
              iters: int = 10, cfg_options=None) -> dict:
    """Time and measure one model.

    Args:
        config (str): Config file.
        shape (Sequence[int]): Input size, S or (H, W). Defaults to (224, ).
        batch (int): Batch size. Defaults to 1.
        backbone_only (bool): Benchmark ``model.backbone`` only. Defaults to False.
        mode (str): ``'fwd'`` or ``'fwdbwd'``. Defaults to ``'fwd'``.
        amp (str): ``'fp32'``, ``'bf16'`` or ``'fp16'`` (autocast). Defaults to ``'fp32'``.
        channels_last (bool): Model and input in channels-last memory format. Defaults to False.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        warmup (int): Untimed steps. Defaults to 2.
        iters (int): Timed steps. Defaults to 10.
        cfg_options (dict, optional): Config overrides.

    Returns:
        dict: ``median_ms``, ``images_per_s``, ``peak_mib``, all step times and the settings.
    """
    if mode not in ('fwd', 'fwdbwd'):
        raise ValueError(f"benchmark: mode must be 'fwd' or 'fwdbwd', got {mode!r}")
    if amp not in AMP:
        raise ValueError(f'benchmark: amp must be one of {list(AMP)}, got {amp!r}')
    if not isinstance(batch, int) or batch < 1 or warmup < 0 or iters < 1:
        raise ValueError(f'benchmark: need batch >= 1, warmup >= 0, iters >= 1; got {batch}, {warmup}, {iters}')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError('benchmark: --device cuda but no CUDA device is available')
    if dev.type == 'cpu' and amp == 'fp16':
        print('note: fp16 autocast on CPU is slow on most CPUs; bf16 is the CPU AMP type', file=sys.stderr)
    h, w = parse_shape(shape)
    model, scope = build_model(load_config(config, cfg_options))
    module, x, forward = model_forward(model, scope, batch, h, w, backbone_only)
    module = module.to(dev)
    x = x.to(dev)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    module.train(mode == 'fwdbwd')
    autocast = (lambda: torch.autocast(dev.type, dtype=AMP[amp])) if AMP[amp] else contextlib.nullcontext

    def step():
        if mode == 'fwd':
            with torch.no_grad(), autocast():
                forward(module, x)
        else:
            module.zero_grad(set_to_none=True)
            with autocast():
                outs = _outputs(forward(module, x))
            sum(o.float().sum() for o in outs).backward()
        if dev.type == 'cuda':
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    # peak memory of one step
    gc.collect()
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mib = cpu_allocator_peak_mib(step)
    median = statistics.median(times)
    return dict(config=config, backbone_only=backbone_only, input_shape=[batch, 3, h, w], mode=mode, amp=amp,
                channels_last=channels_last, device=str(dev), threads=torch.get_num_threads(),
                median_ms=median * 1e3, images_per_s=batch / median, peak_mib=peak_mib,
                times_ms=[t * 1e3 for t in times], load_average=os.getloadavg()[0], torch=torch.__version__)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='images/s, latency and peak memory of a config\'s model')
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs='+', default=[224], help='S or H W (default 224)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--backbone-only', action='store_true')
    parser.add_argument('--mode', choices=('fwd', 'fwdbwd'), default='fwd')
    parser.add_argument('--amp', choices=tuple(AMP), default='fp32')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads (default: torch\'s)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--json', action='store_true', help='print the result as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    r = benchmark(args.config, args.shape, args.batch, args.backbone_only, args.mode, args.amp, args.channels_last,
                  args.device, args.warmup, args.iters, args.cfg_options)
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        b, _, h, w = r['input_shape']
        print(f"{r['config']} ({'backbone' if r['backbone_only'] else 'whole model'}), input ({b}, 3, {h}, {w}), "
              f"{r['mode']}, {r['amp']}, channels_last={r['channels_last']}, {r['device']}, {r['threads']} threads, "
              f"torch {r['torch']}, load average {r['load_average']:.2f}")
        print(f"median {r['median_ms']:.1f} ms over {len(r['times_ms'])} iterations "
              f"(min {min(r['times_ms']):.1f}, max {max(r['times_ms']):.1f}), {r['images_per_s']:.2f} images/s, "
              f"peak memory {r['peak_mib']:.1f} MiB")
    return r


if __name__ == '__main__':
    main()
