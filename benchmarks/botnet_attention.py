"""BoT50 forward+backward time and peak memory per attention implementation.

Compares :class:`mmvit_hybrid.models.layers.RelPosAttention`'s ``attn_impl`` values inside a whole
BoT50 (``img_size`` = the input size, so the tables are used as built):

* ``auto`` (the default): ``matmul`` while the logits hold at most 2^24 elements, else ``sdpa``,
* ``matmul``: explicit logits (``q k^T`` plus the relative logits, softmax, ``attn @ v``),
* ``sdpa``: relative logits folded into SDPA's q/k (no N x N tensor).

``--baseline DIR`` adds the same rows for the package of another checkout (e.g. an older revision:
``git worktree add /tmp/old REV``), imported from DIR instead of this tree, so that a change of the
layer is measured side by side; the ``ratio`` column is each row's time over the first row's.

Each row runs in its own subprocess. Time: the fastest of ``--repeats`` timed iterations after
one warm-up (zero_grad, forward, sum of the four outputs, backward). Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` minus the memory held before the first forward; on CPU the
process's peak resident set size (``ru_maxrss``) minus its size before the first forward, i.e. the
activations, gradients and temporaries of one training step.

Usage (the tables in configs/botnet/README.md were measured with these):
    python benchmarks/botnet_attention.py --size 224 --batch 8 --repeats 5
    python benchmarks/botnet_attention.py --size 1024 --batch 1 --repeats 3
    python benchmarks/botnet_attention.py --size 1024 --baseline /tmp/old --baseline-impls auto matmul
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

IMPLS = ('auto', 'matmul', 'sdpa')


def rss_kib() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') // 1024


def measure(args) -> dict:
    """One implementation, in this process; returns time and peak memory."""
    import torch
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.layer_only:
        from mmvit_hybrid.models.layers import RelPosAttention
        feat = args.size // 16  # the first c5 block attends at the c4 map
        model = RelPosAttention(512, num_heads=4, feat_size=feat, stride=2, attn_impl=args.impl)
        x = torch.randn(args.batch, 512, feat, feat)
    else:
        from mmvit_hybrid.models import BoTNet
        model = BoTNet(arch='50', img_size=args.size, attn_impl=args.impl)
        model.init_weights()
        x = torch.randn(args.batch, 3, args.size, args.size)
    model = model.to(device).train()
    x = x.to(device)

    def step():
        model.zero_grad(set_to_none=True)
        outs = model(x)
        loss = sum(o.float().sum() for o in outs) if isinstance(outs, tuple) else outs.float().sum()
        loss.backward()

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_kib()
    step()  # warm-up
    sync()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    if device.type == 'cuda':
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    return dict(impl=args.impl, time_s=min(times), peak_mib=peak_mib)


def machine(args) -> str:
    import torch
    if args.device.startswith('cuda'):
        return f'{torch.cuda.get_device_name()}, torch {torch.__version__}'
    from mmvit_hybrid.utils import cpu_name
    cpu = cpu_name()
    return f'{cpu}, {os.cpu_count()} cores, {args.threads} torch threads, torch {torch.__version__}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=1024, help='square input size (default: 1024)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=1, help='timed iterations after one warm-up')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads (default: 2)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--impls', nargs='+', default=list(IMPLS))
    parser.add_argument('--baseline', help="another checkout's root: also run its package's --baseline-impls")
    parser.add_argument('--baseline-impls', nargs='+', default=['auto'])
    parser.add_argument('--layer-only', action='store_true',
                        help='time the first c5 attention layer alone (at the c4 map) instead of BoT50')
    parser.add_argument('--impl', help=argparse.SUPPRESS)  # set in the per-row subprocess
    args = parser.parse_args()
    if args.impl:
        print(json.dumps(measure(args)))
        return

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = [(impl, here, impl) for impl in args.impls]
    if args.baseline:
        runs += [(f'{impl} (baseline)', os.path.abspath(args.baseline), impl) for impl in args.baseline_impls]
    rows = []
    for label, root, impl in runs:
        cmd = [sys.executable, __file__, '--impl', impl] + [a for a in sys.argv[1:]]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get('PYTHONPATH', '')]))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root)
        if proc.returncode != 0:
            rows.append(dict(label=label, error=proc.stderr.strip().splitlines()[-1]))
        else:
            rows.append(dict(label=label, **json.loads(proc.stdout.strip().splitlines()[-1])))
    if args.layer_only:
        feat = args.size // 16
        what = f'first c5 RelPosAttention (4 heads, stride 2), input {args.batch}x512x{feat}x{feat}'
    else:
        what = f'BoT50 backbone, input {args.batch}x3x{args.size}x{args.size}'
    print(f'{what}, forward+backward, device {args.device}')
    print(f'machine: {machine(args)}; load average {os.getloadavg()[0]:.2f} after the runs')
    print(f'command: python benchmarks/botnet_attention.py {" ".join(sys.argv[1:])}')
    if args.baseline:
        print(f'baseline: {args.baseline} ({git_revision(args.baseline)}); this tree: {git_revision(here)}')
    print('| attn_impl | time (s) | ratio to first row | peak memory (MiB) |')
    print('| --- | --- | --- | --- |')
    first = next((row['time_s'] for row in rows if 'error' not in row), None)
    for row in rows:
        if 'error' in row:
            print(f'| {row["label"]} | failed: {row["error"]} | | |')
        else:
            print(f'| {row["label"]} | {row["time_s"]:.2f} | {row["time_s"] / first:.2f} | {row["peak_mib"]:.0f} |')


def git_revision(root: str) -> str:
    proc = subprocess.run(['git', '-C', root, 'rev-parse', '--short', 'HEAD'], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    return proc.stdout.strip() or 'not a git checkout'


if __name__ == '__main__':
    main()
