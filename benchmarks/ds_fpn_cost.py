"""DS-FPN's cost next to mmdet's FPN: parameters, FLOPs and CPU forward time, side by side.

Every neck runs on the same random DS-Net-S-shaped features of one image (channels 64/128/320/512
at strides 4-32; 200x336 ... 25x42 for 800x1344), 256 output channels and 5 outputs (Mask R-CNN's
FPN: P6 by max-pooling). FLOPs come from ``mmvit_hybrid.utils.count_flops`` (torch's
``FlopCounterMode``; MACs = FLOPs / 2) on the meta device. Time: eval-mode forward without grad,
the necks interleaved (one forward of each per round, after ``--warmup`` rounds), so that load
changes on a shared machine hit all of them alike; the table gives the median over ``--rounds``
and the median of the per-round ratio to FPN. The targets: at most 1.3x FPN's FLOPs and 2x its
CPU time.

Usage (configs/dsnet/README_dsfpn.md was measured with it):
    python benchmarks/ds_fpn_cost.py                      # every variant, 800x1344, 3 rounds
    python benchmarks/ds_fpn_cost.py --variants fpn default all_levels --rounds 5 --threads 1
"""
import argparse
import os
import statistics
import sys
import time
from collections import OrderedDict

import torch
from botnet_attention import machine  # benchmarks/ is on sys.path when run as a script

IN_CHANNELS = [64, 128, 320, 512]  # DS-Net-S (all DS-Net archs have these widths)
# name -> DSFPN keyword arguments (None: mmdet's FPN)
VARIANTS = OrderedDict(
    fpn=None,
    default=dict(),
    p3_p5=dict(ds_levels=(1, 2, 3)),
    p5=dict(ds_levels=(3, )),
    all_levels=dict(ds_levels=(0, 1, 2, 3)),
)


def build(name: str):
    from mmdet.models.necks import FPN

    from mmvit_hybrid.models import DSFPN
    kwargs = dict(in_channels=IN_CHANNELS, out_channels=256, num_outs=5)
    if VARIANTS[name] is None:
        return FPN(**kwargs)
    return DSFPN(**VARIANTS[name], **kwargs)


def features(h: int, w: int, device='cpu'):
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randn(1, c, h // 2**(i + 2), w // 2**(i + 2), generator=gen).to(device)
                 for i, c in enumerate(IN_CHANNELS))


def describe(name: str) -> str:
    kwargs = VARIANTS[name]
    if kwargs is None:
        return 'mmdet FPN'
    return 'DSFPN(' + ', '.join(f'{k}={v}' for k, v in kwargs.items()) + ')'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS),
                        help='necks to compare (fpn is always included, first)')
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1344), metavar=('H', 'W'))
    parser.add_argument('--rounds', type=int, default=3, help='timed rounds (one forward of every neck each)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads (default: 2)')
    parser.add_argument('--no-time', action='store_true', help='parameters and FLOPs only')
    args = parser.parse_args(argv)
    from mmvit_hybrid.utils.complexity import count_flops, count_params
    torch.set_num_threads(args.threads)
    names = ['fpn'] + [n for n in args.variants if n != 'fpn']
    h, w = args.size
    print(f'command: python {" ".join(sys.argv)}')
    host = machine(argparse.Namespace(device='cpu', threads=args.threads))
    print(f'machine: {host}; load average {os.getloadavg()[0]:.2f} before the runs')

    counts = {}
    with torch.device('meta'):
        meta_feats = features(h, w, 'meta')
        for name in names:
            neck = build(name).eval()
            counts[name] = (count_params(neck), count_flops(neck, inputs=meta_feats) // 2)

    times = {n: [] for n in names}
    if not args.no_time:
        torch.manual_seed(0)
        necks = {}
        for n in names:
            necks[n] = build(n).eval()
            necks[n].init_weights()
        feats = features(h, w)
        with torch.no_grad():
            for r in range(args.warmup + args.rounds):
                for n in names:
                    start = time.perf_counter()
                    necks[n](feats)
                    if r >= args.warmup:
                        times[n].append(time.perf_counter() - start)
                print(f'round {r + 1}/{args.warmup + args.rounds} ' + ('(warm-up) ' if r < args.warmup else '')
                      + ', '.join(f'{n} {times[n][-1]:.2f} s' for n in names if times[n] and r >= args.warmup),
                      flush=True)

    fpn_macs = counts['fpn'][1]
    print(f'\nDS-Net-S features of a {h}x{w} image, 256 channels, 5 outputs; '
          f'time: median of {args.rounds} interleaved eval forwards\n')
    print('| neck | options | params (M) | GMACs | FLOPs / FPN | CPU forward (s) | time / FPN | '
          'within 1.3x FLOPs and 2x time |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for n in names:
        params, macs = counts[n]
        flops_ratio = macs / fpn_macs
        if times[n]:
            t = statistics.median(times[n])
            ratio = statistics.median(a / b for a, b in zip(times[n], times['fpn']))
            time_cols = f'{t:.2f} | {ratio:.2f}x'
            ok = 'yes' if flops_ratio <= 1.3 and ratio <= 2 else 'no'
        else:
            time_cols, ok = '- | -', ('FLOPs yes' if flops_ratio <= 1.3 else 'no')
        print(f'| {n} | {describe(n)} | {params / 1e6:.2f} | {macs / 1e9:.1f} | {flops_ratio:.2f}x | '
              f'{time_cols} | {"" if n == "fpn" else ok} |')
    print(f'\nload average {os.getloadavg()[0]:.2f} after the runs')


if __name__ == '__main__':
    main()
