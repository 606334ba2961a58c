"""Side by side, in one process: this package's backbones vs the reference implementations users
would otherwise pick, with identical weights (through the converters) and identical inputs.

Cases:

* ``volo_d1`` / ``volo_d2``: timm's ``volo_d*_224`` (built at the input size, so its position
  embedding fits) vs :class:`mmvit_hybrid.models.VOLO` (``out_type='cls_and_tokens'``) +
  ``VOLOHead``, loaded from the timm state dict with ``tools/model_converters/volo_to_mmvit.py``.
  224x224 is the classification setting; 512x512 the dense-input size (the same network at a
  32x32 token grid: global attention over 1024 tokens, outlookers on 64x64).
* ``bot_attn``: BoTNet's c5 attention layer: timm's ``BottleneckAttn`` (``scale_pos_embed=True``,
  the paper's math) vs :class:`mmvit_hybrid.models.layers.RelPosAttention` (default
  ``attn_impl='auto'``, i.e. ``'matmul'`` at these sizes), same qkv weights and relative tables,
  at the first c5 block's input (512 channels, 4 heads, stride 2; 14x14 for a 224 image, 32x32
  for 512). timm has no BoT50: its
  ``botnet50ts_256`` is another network (tiered 3-conv stem, SiLU, attention interleaved in c3/c4,
  fixed 256 input), so the whole-network comparison is not possible with identical weights.

Timing: per case the two models alternate (A, B, A, B, ...) after ``--warmup`` untimed rounds
each; the median of ``--iters`` timed calls per model is reported, and ``ratio`` = reference time /
ours (> 1: ours faster). Outputs are compared (max abs diff) before timing. Peak memory:
``--memory`` runs each model in a fresh subprocess: one warm-up step, then one step under
``torch.profiler`` with ``profile_memory=True``; the allocator's allocations and frees, in time
order, give the peak of the bytes held above the step's start (the activations and temporaries,
CPU; deterministic, unlike the process's resident size, which glibc's caching blurs by several
MiB), or ``torch.cuda.max_memory_allocated`` growth (CUDA).

Examples:
    python benchmarks/compare_reference.py                       # all cases, fp32, CPU
    python benchmarks/compare_reference.py --cases volo_d1 --sizes 224 --mode fwdbwd
    python benchmarks/compare_reference.py --device cuda --amp bf16 --batch 32 8
"""
import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from mmvit_hybrid.utils import cpu_allocator_peak_mib, cpu_name

ROOT = Path(__file__).resolve().parents[1]
CASES = ('volo_d1', 'volo_d2', 'bot_attn')
AMP = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def _load_converter():
    spec = importlib.util.spec_from_file_location('volo_to_mmvit', ROOT / 'tools/model_converters/volo_to_mmvit.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_state(model, seed=0):
    """Seeded random values for every tensor of ``model``'s state dict (faster than timm's init)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in model.state_dict().items():
        if name.endswith('num_batches_tracked'):
            state[name] = torch.zeros((), dtype=torch.long)
        elif name.endswith('running_var'):
            state[name] = torch.rand(t.shape, generator=gen) + 0.5
        elif t.dim() == 1 and name.endswith('weight'):
            state[name] = 1 + 0.1 * torch.randn(t.shape, generator=gen)
        else:
            state[name] = 0.05 * torch.randn(t.shape, generator=gen)
    return state


class VOLOClassifier(torch.nn.Module):
    """Our VOLO backbone + VOLOHead, called like timm's model (image -> logits)."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


def build_case(case: str, size: int):
    """(reference, ours, input shape without batch) with identical weights."""
    if case.startswith('volo_'):
        import timm
        from mmvit_hybrid.models import VOLO, VOLOHead
        arch = case.split('_')[1]
        with torch.device('meta'):
            ref = timm.create_model(f'volo_{arch}_224', img_size=size)
        ref.load_state_dict(random_state(ref), strict=True, assign=True)
        converted = _load_converter().convert_volo(ref.state_dict())
        with torch.device('meta'):
            backbone = VOLO(arch, img_size=size, out_type='cls_and_tokens')
            head = VOLOHead(1000, backbone.embed_dims[-1])
        for module, prefix in ((backbone, 'backbone.'), (head, 'head.')):
            module.load_state_dict({k[len(prefix):]: v for k, v in converted.items() if k.startswith(prefix)},
                                   strict=True, assign=True)
        return ref.eval(), VOLOClassifier(backbone, head).eval(), (3, size, size)
    if case == 'bot_attn':
        from timm.layers.bottleneck_attn import BottleneckAttn
        from mmvit_hybrid.models.layers import RelPosAttention
        feat = size // 16  # the first c5 block attends on the c4 map, then pools (stride 2)
        torch.manual_seed(0)
        ref = BottleneckAttn(512, 512, feat_size=(feat, feat), stride=2, num_heads=4, qkv_bias=False,
                             scale_pos_embed=True)
        ours = RelPosAttention(512, num_heads=4, feat_size=feat, stride=2)
        with torch.no_grad():
            ours.qkv.weight.copy_(ref.qkv.weight)
            ours.rel_pos_h.copy_(ref.pos_embed.height_rel)
            ours.rel_pos_w.copy_(ref.pos_embed.width_rel)
        return ref.eval(), ours.eval(), (512, feat, feat)
    raise ValueError(f'unknown case {case!r}; choose from {CASES}')


def make_step(model, x, mode, amp_dtype, device):
    """A callable running one forward (no grad) or forward+backward."""
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext

    def fwd():
        with torch.no_grad(), autocast():
            return model(x)

    def fwdbwd():
        model.zero_grad(set_to_none=True)
        with autocast():
            out = model(x)
        out.float().sum().backward()
        return out

    return fwd if mode == 'fwd' else fwdbwd


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def time_interleaved(steps, warmup, iters, device):
    """Alternate the steps (A, B, A, B, ...); return the per-step lists of seconds."""
    for _ in range(warmup):
        for step in steps:
            step()
    times = [[] for _ in steps]
    for _ in range(iters):
        for i, step in enumerate(steps):
            sync(device)
            t = time.perf_counter()
            step()
            sync(device)
            times[i].append(time.perf_counter() - t)
    return times


def measure_memory(args, case, size, batch, which):
    """Run in a child process: peak memory growth (MiB) of one step of ``which`` model."""
    cmd = [sys.executable, __file__, '--_memory-child', json.dumps(dict(
        case=case, size=size, batch=batch, which=which, mode=args.mode, amp=args.amp, device=args.device,
        channels_last=args.channels_last, threads=args.threads))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])['peak_mib']


def memory_child(spec):
    spec = json.loads(spec)
    torch.set_num_threads(spec['threads'])
    device = torch.device(spec['device'])
    ref, ours, shape = build_case(spec['case'], spec['size'])
    model = (ref if spec['which'] == 'reference' else ours).to(device)
    x = torch.randn(spec['batch'], *shape, generator=torch.Generator().manual_seed(1)).to(device)
    if spec['channels_last'] and x.dim() == 4:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    del ref, ours
    step = make_step(model, x, spec['mode'], AMP[spec['amp']], device)
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        step()  # warm-up: one-off allocations (thread pools, oneDNN primitives) are not the model's
        peak = cpu_allocator_peak_mib(step)
    print(json.dumps(dict(peak_mib=peak)))


def machine():
    cpu = cpu_name()
    return (f'{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}, '
            f'load average {os.getloadavg()[0]:.2f}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='ours vs reference (timm), same weights and inputs')
    parser.add_argument('--cases', nargs='+', default=list(CASES), choices=CASES)
    parser.add_argument('--sizes', type=int, nargs='+', default=[224, 512], help='input sides (default 224 512)')
    parser.add_argument('--batch', type=int, nargs='+', default=None,
                        help='batch per size (default: 4 at 224, 1 at larger sizes)')
    parser.add_argument('--mode', choices=('fwd', 'fwdbwd'), default='fwd')
    parser.add_argument('--amp', choices=tuple(AMP), default='fp32')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--memory', action='store_true', help='also measure peak memory (subprocesses)')
    parser.add_argument('--json', default=None, help='also write the rows to this JSON file')
    parser.add_argument('--_memory-child', dest='memory_child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch is not None and len(args.batch) != len(args.sizes):
        parser.error(f'--batch needs one value per size {args.sizes}, got {args.batch}')
    if any(s < 32 or s % 16 for s in args.sizes):
        parser.error(f'--sizes must be multiples of 16 and >= 32, got {args.sizes}')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.memory_child:
        return memory_child(args.memory_child)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batches = args.batch or [4 if s <= 224 else 1 for s in args.sizes]
    print(f'# machine: {machine()}')
    print(f'# command: python benchmarks/compare_reference.py {" ".join(sys.argv[1:] if argv is None else argv)}')
    print(f'# mode {args.mode}, {args.amp}, channels_last={args.channels_last}, device {args.device}, '
          f'{args.warmup} warm-up + {args.iters} timed iterations per model, interleaved; median')
    header = '| case | input | B | reference ms | ours ms | ratio (ref/ours) | ref img/s | ours img/s |'
    if args.memory:
        header += ' ref peak MiB | ours peak MiB |'
    header += ' max abs diff |'
    print(header)
    print('|' + ' --- |' * (header.count('|') - 1))
    rows = []
    for case in args.cases:
        for size, batch in zip(args.sizes, batches):
            ref, ours, shape = build_case(case, size)
            ref, ours = ref.to(device), ours.to(device)
            x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1)).to(device)
            if args.channels_last:
                ref, ours = ref.to(memory_format=torch.channels_last), ours.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                diff = (ref(x).float() - ours(x).float()).abs().max().item()
            steps = [make_step(m, x, args.mode, AMP[args.amp], device) for m in (ref, ours)]
            t_ref, t_ours = (statistics.median(t) for t in time_interleaved(steps, args.warmup, args.iters, device))
            row = dict(case=case, size=size, batch=batch, ref_ms=t_ref * 1e3, ours_ms=t_ours * 1e3,
                       ratio=t_ref / t_ours, diff=diff, load=os.getloadavg()[0])
            line = (f'| {case} | {size}x{size} | {batch} | {row["ref_ms"]:.1f} | {row["ours_ms"]:.1f} | '
                    f'{row["ratio"]:.2f} | {batch / t_ref:.2f} | {batch / t_ours:.2f} |')
            if args.memory:
                del ref, ours, steps
                row['ref_mib'] = measure_memory(args, case, size, batch, 'reference')
                row['ours_mib'] = measure_memory(args, case, size, batch, 'ours')
                line += f' {row["ref_mib"]:.0f} | {row["ours_mib"]:.0f} |'
            line += f' {diff:.1e} |'
            print(line, flush=True)
            rows.append(row)
    print(f'# load average at the end: {os.getloadavg()[0]:.2f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(machine=machine(), args=vars(args), rows=rows), f, indent=1)
    return rows


if __name__ == '__main__':
    main()
