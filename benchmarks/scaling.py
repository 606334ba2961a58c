"""Cost growth of each backbone with the input size (square sides 256 to 1024 by default).

For every backbone: parameters, GMACs (``mmvit_hybrid.utils.count_flops`` / 2, counted on the
meta device: shapes only, no arithmetic, so large inputs cost nothing) at each side, the growth
relative to the smallest side, and the growth exponent ``log(MACs ratio) / log(pixel ratio)``
between consecutive sides: 1.0 is linear in the pixels (convolutions, local / outlook attention,
attention over a fixed-downsampled token set), values towards 2.0 show global attention over all
tokens (quadratic in the pixels). With ``--time`` the CPU forward latency (median of ``--iters``
after one warm-up, batch 1) is measured too, at the sides given by ``--time-sizes``.

``--compile-check`` instead compiles one tiny version of each backbone with inductor on CPU and
prints the compile time and the max abs difference to eager.

Examples:
    python benchmarks/scaling.py
    python benchmarks/scaling.py --time --time-sizes 256 512 --threads 1
    python benchmarks/scaling.py --compile-check
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch

from mmvit_hybrid.models import VOLO, BoTNet, DMFormer, DSNet
from mmvit_hybrid.utils import count_flops, count_params

BACKBONES = {
    'dsnet_t': lambda: DSNet(arch='tiny', drop_path_rate=0., attn_drop_rate=0.),
    'dsnet_s': lambda: DSNet(arch='small', drop_path_rate=0., attn_drop_rate=0.),
    'dmformer_s': lambda: DMFormer(arch='s', drop_path_rate=0.),
    'volo_d1': lambda: VOLO(arch='d1', out_strides=(4, 8, 16, 32)),
    'volo_d2': lambda: VOLO(arch='d2', out_strides=(4, 8, 16, 32)),
    'bot50': lambda: BoTNet(arch='50', img_size=224),
}
TINY = {
    'volo': lambda: VOLO(arch=dict(depths=(1, 1, 1, 1), embed_dims=(16, 32, 32, 32), num_heads=(2, 4, 4, 4),
                                   mlp_ratio=2, stem_channels=8), img_size=64),
    'botnet': lambda: BoTNet(arch=dict(depths=(1, 1, 1, 2), strides=(1, 2, 2, 2)), img_size=64, num_attn_blocks=2),
    'dsnet': lambda: DSNet(arch=dict(embed_dims=(16, 32, 40, 64), depths=(1, 1, 1, 1), num_heads=(1, 2, 5, 8)),
                           drop_path_rate=0., attn_drop_rate=0.),
    'dmformer': lambda: DMFormer(arch=dict(embed_dims=(16, 32, 40, 64), depths=(1, 1, 1, 1)), drop_path_rate=0.),
}


def macs_at(name, side):
    model = BACKBONES[name]().eval().to('meta')
    return count_flops(model, inputs=torch.empty(1, 3, side, side, device='meta')) // 2, count_params(model)


def latency_ms(model, side, iters):
    x = torch.randn(1, 3, side, side)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(iters):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def compile_check():
    print('| backbone (tiny) | backend | first call (compile) s | max abs diff vs eager |')
    print('| --- | --- | --- | --- |')
    for name, ctor in TINY.items():
        torch._dynamo.reset()
        torch.manual_seed(0)
        model = ctor()
        model.init_weights()
        model.eval()
        x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = model(x)
            t = time.perf_counter()
            actual = torch.compile(model, backend='inductor')(x)
            dt = time.perf_counter() - t
        diff = max((e - a).abs().max().item() for e, a in zip(expected, actual))
        print(f'| {name} | inductor | {dt:.1f} | {diff:.1e} |', flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description='backbone cost growth with input size')
    parser.add_argument('--backbones', nargs='+', default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument('--sizes', type=int, nargs='+', default=[256, 512, 768, 1024])
    parser.add_argument('--time', action='store_true', help='also time the CPU forward (batch 1)')
    parser.add_argument('--time-sizes', type=int, nargs='+', default=[256, 512])
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--compile-check', action='store_true', help='inductor compile check of tiny backbones')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if any(s < 64 or s % 32 for s in args.sizes + args.time_sizes):
        parser.error('sizes must be multiples of 32, at least 64')
    print(f'# torch {torch.__version__}, {os.cpu_count()} cores, threads {torch.get_num_threads()}, '
          f'load average {os.getloadavg()[0]:.2f}')
    print(f'# command: python benchmarks/scaling.py {" ".join(sys.argv[1:] if argv is None else argv)}')
    if args.compile_check:
        return compile_check()
    sizes = sorted(args.sizes)
    head = '| backbone | params | ' + ' | '.join(f'GMACs @{s}' for s in sizes) + \
        f' | growth {sizes[0]}->{sizes[-1]} (pixels x{(sizes[-1] / sizes[0]) ** 2:.0f}) | exponent per step |'
    if args.time:
        head += ' ' + ' | '.join(f'ms @{s}' for s in args.time_sizes) + ' |'
    print(head)
    print('|' + ' --- |' * (head.count('|') - 1))
    for name in args.backbones:
        macs, params = zip(*(macs_at(name, s) for s in sizes))
        exps = [math.log(macs[i + 1] / macs[i]) / math.log((sizes[i + 1] / sizes[i])**2) for i in range(len(sizes) - 1)]
        line = (f'| {name} | {params[0] / 1e6:.2f}M | ' + ' | '.join(f'{m / 1e9:.2f}' for m in macs) +
                f' | x{macs[-1] / macs[0]:.1f} | ' + ', '.join(f'{e:.2f}' for e in exps) + ' |')
        if args.time:
            torch.manual_seed(0)
            model = BACKBONES[name]().eval()
            line += ' ' + ' | '.join(f'{latency_ms(model, s, args.iters):.0f}' for s in args.time_sizes) + ' |'
        print(line, flush=True)


if __name__ == '__main__':
    main()
