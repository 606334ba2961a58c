"""One DS-Net co-attention at detection scale, forward + backward: time and peak memory per path.

The stage-1 co-attention of a DS-Net at an 800x1344 input pairs the 200x336 = 67,200 local
tokens with the 25x42 = 1,050 global ones (global stride 8), 1 head of 32 channels (DS-Net-T/S/B
stage 1). Both directions are measured, q/k/v laid out as the block makes them (packed
``(B, N, 3C/2)`` projections split per head, unit last-dim stride), for each path:

* ``fused``: ``scaled_dot_product_attention`` without dropout (the dense configs); the CPU
  dispatch picks the flash kernel;
* ``math, dropout 0.1``: SDPA with the reference's dropout, which on CPU runs the math kernel
  (the whole probability matrix and its dropout mask kept for backward);
* ``chunked, dropout 0.1``: :func:`mmvit_hybrid.models.layers.dual_stream.dropout_attention_in_chunks`,
  what a block with dropout runs on CPU;
* ``math, no dropout, transposed q/k/v``: the layout of a 1x1-conv output flattened from NCHW
  (last-dim stride H*W), which no fused kernel takes.

Each case runs ``--iters`` times, interleaved (A, B, C, ..., A, B, C, ...); the median time and the
CPU allocator's peak above the start (``mmvit_hybrid.utils.cpu_allocator_peak_mib``) are printed
with the SDPA backend torch dispatches to, the command, the machine and the load.

Example:
    python benchmarks/dsnet_attention.py --iters 3 --threads 2
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from mmvit_hybrid.models.layers.dual_stream import _split_heads, dropout_attention_in_chunks
from mmvit_hybrid.utils import cpu_allocator_peak_mib, cpu_name


def make_inputs(local_tokens: int, global_tokens: int, dims: int, heads: int, transposed: bool):
    """Packed local and global projections (B=1), split per head as the block splits them."""
    local_qkv = torch.randn(1, local_tokens, 3 * dims)
    if transposed:  # NCHW conv output flattened: (B, 3C, N) memory, read as (B, N, 3C)
        local_qkv = torch.randn(1, 3 * dims, local_tokens).transpose(1, 2)
    global_qkv = torch.randn(1, global_tokens, 3 * dims)
    local_qkv.requires_grad_(True)
    global_qkv.requires_grad_(True)
    return _split_heads(local_qkv, heads), _split_heads(global_qkv, heads)


def run(case: str, direction: str, args) -> float:
    """One forward + backward of one direction; returns seconds."""
    (lq, lk, lv), (gq, gk, gv) = make_inputs(args.local_tokens, args.global_tokens, args.dims, args.heads,
                                             transposed=case == 'math, transposed q/k/v')
    q, k, v = (lq, gk, gv) if direction == 'local<-global' else (gq, lk, lv)
    start = time.perf_counter()
    if case == 'chunked, dropout 0.1':
        out = dropout_attention_in_chunks(q, k, v, 0.1)
    else:
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.1 if case == 'math, dropout 0.1' else 0.)
    out.sum().backward()
    return time.perf_counter() - start


def backend(case: str, direction: str, args) -> str:
    if case == 'chunked, dropout 0.1':
        return 'math, per chunk'
    (lq, lk, lv), (gq, gk, gv) = make_inputs(64, 8, args.dims, args.heads, transposed=case == 'math, transposed q/k/v')
    q, k, v = (lq, gk, gv) if direction == 'local<-global' else (gq, lk, lv)
    choice = torch._fused_sdp_choice(q, k, v, dropout_p=0.1 if case == 'math, dropout 0.1' else 0.)
    return {0: 'math', 1: 'flash'}.get(choice, str(choice))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--local-tokens', type=int, default=200 * 336)
    parser.add_argument('--global-tokens', type=int, default=25 * 42)
    parser.add_argument('--dims', type=int, default=32, help='channels of one stream (stage 1: 32)')
    parser.add_argument('--heads', type=int, default=1)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f'# command: python benchmarks/dsnet_attention.py {" ".join(sys.argv[1:] if argv is None else argv)}')
    print(f'# machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, '
          f'{torch.get_num_threads()} torch threads; load average at start {os.getloadavg()[0]:.2f}')
    cases = ['fused', 'math, dropout 0.1', 'chunked, dropout 0.1', 'math, transposed q/k/v']
    keys = [(c, d) for d in ('local<-global', 'global<-local') for c in cases]
    peaks = {key: cpu_allocator_peak_mib(lambda key=key: run(*key, args)) for key in keys}  # warm-up
    times = {key: [] for key in keys}
    for _ in range(args.iters):
        for key in keys:
            times[key].append(run(*key, args))
    print(f'# load average at end {os.getloadavg()[0]:.2f}\n')
    print(f'| direction | path | SDPA backend | fwd+bwd s, median of {args.iters} | peak MiB | time / fused | '
          'peak / fused |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for direction, case in [(d, c) for c, d in keys]:
        t = statistics.median(times[(case, direction)])
        t0 = statistics.median(times[('fused', direction)])
        p, p0 = peaks[(case, direction)], peaks[('fused', direction)]
        print(f'| {direction} | {case} | {backend(case, direction, args)} | {t:.3f} | {p:.0f} | {t / t0:.2f}x | '
              f'{p / max(p0, 1e-9):.1f}x |')


if __name__ == '__main__':
    main()
