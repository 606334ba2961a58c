"""onnxruntime vs PyTorch eager CPU latency of each backbone's classifier, at 224 and 512, in one run.

Per config: build the classifier (random weights), export it once with dynamic H/W through
``tools/deployment/pytorch2onnx.py``'s code path (:func:`mmvit_hybrid.deployment.export`, the
exporter it picks per backbone), then at each size time PyTorch eager (``torch.no_grad``, eval) and
an onnxruntime CPU session (all graph optimisations) on the same input, with the same thread count,
alternating the two, and check they agree. Prints a markdown table with the median latencies, the
ratio PyTorch / onnxruntime (> 1: onnxruntime faster), the max abs difference relative to the
output scale, and the command, machine and load.

Example:
    OMP_NUM_THREADS=1 python benchmarks/onnx_runtime.py --threads 1
    python benchmarks/onnx_runtime.py --configs configs/volo/volo_d1_in1k.py --sizes 224 --runs 3
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch

from mmvit_hybrid.utils import cpu_name

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = ['configs/dsnet/dsnet_t_in1k.py', 'configs/dmformer/dmformer_s_in1k.py', 'configs/volo/volo_d1_in1k.py',
           'configs/botnet/botnet50_in1k.py']


def machine(threads: int) -> str:
    cpu = cpu_name()
    import onnxruntime
    return (f'{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, '
            f'{threads} thread(s), load average {os.getloadavg()[0]:.2f}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='onnxruntime vs PyTorch eager CPU latency per backbone')
    parser.add_argument('--configs', nargs='+', default=CONFIGS, help='classifier configs (default: one per backbone)')
    parser.add_argument('--sizes', type=int, nargs='+', default=[224, 512], help='square input sizes')
    parser.add_argument('--runs', type=int, default=5, help='timed runs per engine and size (median)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs first')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(), help='threads of both engines')
    parser.add_argument('--opset', type=int, default=18)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, ROOT)
    import onnxruntime as ort

    from mmvit_hybrid.deployment.export import ExportWrapper, build_model, export, load_config

    torch.set_num_threads(args.threads)
    rows = []
    tmp = tempfile.mkdtemp(prefix='onnx_bench_')
    for config in args.configs:
        model, kind = build_model(load_config(osp.join(ROOT, config) if not osp.isabs(config) else config), config)
        name = type(model.backbone).__name__
        path = osp.join(tmp, osp.splitext(osp.basename(config))[0] + '.onnx')
        t0 = time.perf_counter()
        info = export(model, kind, (args.sizes[0], args.sizes[0]), path, opset=args.opset, dynamic=True)
        export_s = time.perf_counter() - t0
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
        wrapper = ExportWrapper(model, kind).eval()
        for size in args.sizes:
            x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            feed = {'input': x.numpy()}
            with torch.no_grad():
                for _ in range(args.warmup):
                    ref = wrapper(x)
                    got = session.run(None, feed)[0]
                t_torch, t_ort = [], []
                for _ in range(args.runs):  # alternate so that load changes hit both engines
                    t = time.perf_counter()
                    wrapper(x)
                    t_torch.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    session.run(None, feed)
                    t_ort.append(time.perf_counter() - t)
            diff = (torch.from_numpy(got) - ref).abs().max().item() / ref.abs().max().item()
            torch_ms, ort_ms = statistics.median(t_torch) * 1e3, statistics.median(t_ort) * 1e3
            rows.append((config, name, info['exporter'], size, torch_ms, ort_ms, torch_ms / ort_ms, diff, export_s))
            print(f'{config} {size}: torch {torch_ms:.1f} ms, onnxruntime {ort_ms:.1f} ms', file=sys.stderr, flush=True)
    print(f'command: {" ".join([osp.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}')
    print(f'machine: {machine(args.threads)} (after the runs)')
    print(f'median of {args.runs} runs after {args.warmup} warm-up runs, batch 1, float32, random weights\n')
    print('| config | backbone | exporter | input | PyTorch eager ms | onnxruntime ms | PyTorch / onnxruntime | '
          'max abs diff / output scale | export s |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for config, name, exporter, size, t, o, ratio, diff, export_s in rows:
        print(f'| `{config}` | {name} | {exporter} | {size}x{size} | {t:.1f} | {o:.1f} | {ratio:.2f}x | {diff:.1e} | '
              f'{export_s:.0f} |')


if __name__ == '__main__':
    main()
