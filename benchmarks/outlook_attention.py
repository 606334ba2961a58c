"""Benchmark the fused outlook-attention op against the unfold/fold reference.

Shapes are VOLO-D1 stage 1 (stride 8, C=192, 6 heads, K=3, padding 1, stride 2) for 224x224,
512x512 and 1024x2048 input images. For each shape and implementation it measures:

- ``fwd ms``: forward time, inputs without grad (median of ``--reps`` runs after warm-up);
- ``fwd+bwd ms``: forward and backward to ``value`` and ``attn``;
- ``extra MiB``: the activation memory the op adds, i.e. its output plus what autograd saves for
  backward that is not one of the op's inputs (counted with saved-tensor hooks, by storage);
- on CUDA also ``alloc MiB`` (allocated memory after a forward with grad, minus before: the same
  quantity seen by the allocator) and ``peak MiB`` (peak allocated during forward+backward,
  minus the memory held before it);
- ``fwd GB/s``: the forward's minimum traffic (value and attn read once, output written once)
  over its time, and ``% copy``: that against a device-to-device copy (bytes read + written per
  second) measured in the same run (``copy_`` of a 1 GiB tensor on CUDA, 256 MiB on CPU).

Usage::

    python benchmarks/outlook_attention.py --device cpu
    python benchmarks/outlook_attention.py --device cuda --dtype float32 bfloat16 --json op.json

The command, machine and table are printed; copy them into benchmarks/README.md. ``--shapes tiny``
(a 64x96 image) is for the dry run of tools/gpu_check.sh.
"""
import argparse
import json
import platform
import statistics
import sys
import time

import torch

from mmvit_hybrid.ops import ext_available, outlook_attention, outlook_attention_reference

# (name, image H, image W, batch); VOLO's stage 1 runs at stride 8
SHAPES = [('224x224', 224, 224, 8), ('512x512', 512, 512, 2), ('1024x2048', 1024, 2048, 1),
          ('tiny', 64, 96, 1)]
DEFAULT_SHAPES = ['224x224', '512x512', '1024x2048']
C, HEADS, K, PAD, STRIDE = 192, 6, 3, 1, 2


def make_inputs(batch, img_h, img_w, dtype, device):
    H, W = img_h // 8, img_w // 8
    Ho, Wo = -(-H // STRIDE), -(-W // STRIDE)
    gen = torch.Generator().manual_seed(0)
    # VOLO's value is Linear(x).permute(0, 3, 1, 2): (B, C, H, W) shape, channels-last memory
    value = torch.randn(batch, H, W, C, generator=gen).permute(0, 3, 1, 2)  # (B, C, H, W)
    attn = torch.randn(batch, HEADS, Ho, Wo, K * K, K * K, generator=gen).softmax(-1)
    return value.to(device, dtype), attn.to(device, dtype)


def upstream_grad(value):
    """A random upstream gradient in VOLO's layout: proj's input grad, (B, H, W, C) permuted."""
    B, C, H, W = value.shape
    return torch.randn(B, H, W, C, device=value.device, dtype=value.dtype).permute(0, 3, 1, 2)


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timeit(fn, device, reps, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def saved_extra_bytes(op, value, attn):
    """Output bytes plus bytes of tensors saved for backward whose storage is not an input's."""
    value = value.detach().requires_grad_()
    attn = attn.detach().requires_grad_()
    inputs = {value.untyped_storage().data_ptr(), attn.untyped_storage().data_ptr()}
    storages = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in inputs:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = op(value, attn, K, PAD, STRIDE)
    storages.setdefault(out.untyped_storage().data_ptr(), out.untyped_storage().nbytes())
    return sum(storages.values())


def cuda_memory(op, value, attn, device):
    """(allocated after a forward with grad, peak during forward+backward), both minus before."""
    value = value.detach().requires_grad_()
    attn = attn.detach().requires_grad_()
    grad = upstream_grad(value)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    out = op(value, attn, K, PAD, STRIDE)
    torch.cuda.synchronize(device)
    after_fwd = torch.cuda.memory_allocated(device) - base
    out.backward(grad)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    return after_fwd, peak


def bench(op, value, attn, device, reps):
    grad = upstream_grad(value)
    v = value.detach().requires_grad_()
    a = attn.detach().requires_grad_()

    def fwd():
        with torch.no_grad():
            op(value, attn, K, PAD, STRIDE)

    def fwd_bwd():
        v.grad = a.grad = None
        op(v, a, K, PAD, STRIDE).backward(grad)

    row = {'fwd': timeit(fwd, device, reps), 'fwd_bwd': timeit(fwd_bwd, device, reps),
           'extra': saved_extra_bytes(op, value, attn) / 2**20}
    if device.type == 'cuda':
        alloc, peak = cuda_memory(op, value, attn, device)
        row.update(alloc=alloc / 2**20, peak=peak / 2**20)
    return row


def max_diffs(value, attn, device):
    """Max abs difference fused vs reference: output, grad_value, grad_attn (same dtype)."""
    grad = upstream_grad(value)
    results = []
    for op in (outlook_attention_reference, outlook_attention):
        v = value.detach().requires_grad_()
        a = attn.detach().requires_grad_()
        out = op(v, a, K, PAD, STRIDE)
        out.backward(grad)
        results.append((out.detach(), v.grad, a.grad))
    return [(f - r).abs().max().item() for f, r in zip(results[1], results[0])]


def min_forward_bytes(value, attn):
    """Bytes the forward must move at least: read value and attn, write the output."""
    return 2 * value.numel() * value.element_size() + attn.numel() * attn.element_size()


def copy_bandwidth(device, reps):
    """Device-to-device copy rate in GB/s (bytes read + written per second)."""
    nbytes = 2**30 if device.type == 'cuda' else 2**28
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.)
    dst = torch.empty_like(src)
    ms = timeit(lambda: dst.copy_(src), device, reps)
    del src, dst
    return 2 * nbytes / (ms * 1e-3) / 1e9


def machine(device):
    if device.type == 'cuda':
        return (f'{torch.cuda.get_device_name(device)}, torch {torch.__version__} '
                f'(CUDA {torch.version.cuda})')
    return (f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, '
            f'torch {torch.__version__}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', nargs='+', default=['float32'],
                        choices=['float32', 'float64', 'float16', 'bfloat16'])
    parser.add_argument('--reps', type=int, default=None,
                        help='timed runs per measurement (default 20 on CUDA, 5 on CPU)')
    parser.add_argument('--shapes', nargs='+', default=DEFAULT_SHAPES,
                        choices=[s[0] for s in SHAPES])
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--json', default=None, help='also write the rows to this JSON file')
    args = parser.parse_args(argv)
    if not ext_available():
        sys.exit('mmvit_hybrid._ext is not built; the fused op would be the reference. Build '
                 'it with `python setup.py build_ext --inplace` first.')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    reps = args.reps or (20 if device.type == 'cuda' else 5)
    copy_gbs = copy_bandwidth(device, reps)
    command = 'python benchmarks/outlook_attention.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    print(f'command: {command}')
    print(f'machine: {machine(device)}')
    print(f'device-to-device copy: {copy_gbs:.1f} GB/s (read + write)')
    cols = ['shape', 'B', 'dtype', 'impl', 'fwd ms', 'fwd+bwd ms', 'extra MiB']
    if device.type == 'cuda':
        cols += ['alloc MiB', 'peak MiB']
    cols += ['fwd GB/s', '% copy', 'fwd speed-up', 'fwd+bwd speed-up', 'extra mem ratio',
             'max abs diff out / grad_v / grad_a']
    print('| ' + ' | '.join(cols) + ' |')
    print('|' + ' --- |' * len(cols))
    rows = []
    for name, img_h, img_w, batch in SHAPES:
        if name not in args.shapes:
            continue
        for dtype_name in args.dtype:
            dtype = getattr(torch, dtype_name)
            value, attn = make_inputs(batch, img_h, img_w, dtype, device)
            ref = bench(outlook_attention_reference, value, attn, device, reps)
            fused = bench(outlook_attention, value, attn, device, reps)
            diffs = max_diffs(value, attn, device)
            nbytes = min_forward_bytes(value, attn)
            for impl, row in (('reference', ref), ('fused', fused)):
                row['gbs'] = nbytes / (row['fwd'] * 1e-3) / 1e9
                cells = [name, str(batch), dtype_name, impl, f"{row['fwd']:.3f}",
                         f"{row['fwd_bwd']:.3f}", f"{row['extra']:.1f}"]
                if device.type == 'cuda':
                    cells += [f"{row['alloc']:.1f}", f"{row['peak']:.1f}"]
                cells += [f"{row['gbs']:.1f}", f"{100 * row['gbs'] / copy_gbs:.0f}%"]
                if impl == 'fused':
                    cells += [f"{ref['fwd'] / row['fwd']:.2f}x",
                              f"{ref['fwd_bwd'] / row['fwd_bwd']:.2f}x",
                              f"{ref['extra'] / row['extra']:.2f}x",
                              ' / '.join(f'{d:.1e}' for d in diffs)]
                else:
                    cells += ['', '', '', '']
                print('| ' + ' | '.join(cells) + ' |', flush=True)
            rows.append(dict(shape=name, batch=batch, dtype=dtype_name, reference=ref,
                             fused=fused, max_abs_diff=diffs, copy_gbs=copy_gbs))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(command=command, machine=machine(device), copy_gbs=copy_gbs,
                           rows=rows), f, indent=1)
    return rows


if __name__ == '__main__':
    main()
