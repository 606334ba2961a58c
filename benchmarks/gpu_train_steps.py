"""Training steps of every backbone under mmengine's ``AmpOptimWrapper``: the model-level device
steps of ``tools/gpu_check.sh``.

Subcommands:

* ``det``: one Mask R-CNN training step (forward, backward, optimizer update through
  ``AmpOptimWrapper.update_params``) per row of ``benchmarks/det_scale.py`` (this package's
  backbones beside mmdet's own R50 and Swin-T configs, built by its :func:`det_scale.build`) at
  800x1344, batch 2 (``mmdet.testing.demo_mm_inputs``, 5 boxes and masks an image, seeded);
* ``seg``: one UperNet training step per backbone at 512x512, batch 4, beside mmseg's own R50
  and Swin-T UperNet configs (random 150-class labels);
* ``syncbn``: a 1-process process group (``nccl`` on CUDA, ``gloo`` on CPU), the DS-Net-T UperNet
  (SyncBN in backbone and heads) wrapped in mmengine's ``MMDistributedDataParallel`` and trained
  for ``--iters`` steps through its ``train_step`` under ``AmpOptimWrapper``, its first loss
  compared with the same model and batch without the process group (SyncBN reverted to BN). On
  CPU, torch's SyncBatchNorm refuses CPU tensors in an initialised group, so the dry run reverts
  it to BN there and says so; the group, DDP and the AMP wrapper are the real ones.

Per row and AMP dtype (``--amp bf16 fp16``): one warm-up step, then ``--iters`` timed steps
(median; CUDA synchronised around each), the peak of ``torch.cuda.max_memory_allocated`` over
the timed steps (the row alone on the GPU: weights, gradients, AdamW state and activations; the
previous row is freed first), the step's FLOPs (forward + backward, counted once per row under
the first dtype by :func:`det_scale.step_flops`) and, when the Swin-T row ran, time / Swin-T,
FLOPs / Swin-T and time per FLOP / Swin-T. A step whose losses are not all finite, or a row that
raises, fails the row; the exit status is 1 if any row failed.

On a machine without CUDA (the dry run), ``AmpOptimWrapper``'s CUDA-availability assertion is
bypassed for its construction only, so the same wrapper runs CPU autocast (bf16 only: mmengine's
CPU autocast accepts no fp16).

Examples (the calls of tools/gpu_check.sh)::

    python benchmarks/gpu_train_steps.py det --amp bf16 fp16 --json det.json
    python benchmarks/gpu_train_steps.py seg --amp bf16 fp16 --json seg.json
    python benchmarks/gpu_train_steps.py syncbn --json syncbn.json
    python benchmarks/gpu_train_steps.py det --device cpu --amp bf16 --rows swin_t dsnet_t \\
        --size 64 96 --iters 1 --cfg-options model.train_cfg.rpn_proposal.max_per_img=64 \\
        model.train_cfg.rcnn.sampler.num=16 --json det.json            # dry run
"""
import argparse
import contextlib
import copy
import gc
import json
import logging
import math
import os
import socket
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))
import det_scale  # noqa: E402  (the lead's detection-scale benchmark: rows, model building, FLOPs)

DET_ROWS = det_scale.ROWS
SEG_ROWS = {
    'r50': 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
    'swin_t': 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    'dsnet_t': 'configs/dsnet/upernet_dsnet_t_ade20k.py',
    'dsnet_s': 'configs/dsnet/upernet_dsnet_s_ade20k.py',
    'dmformer_s': 'configs/dmformer/upernet_dmformer_s_ade20k.py',
    'volo_d1': 'configs/volo/upernet_volo_d1_ade20k.py',
    'bot50': 'configs/botnet/upernet_botnet50_ade20k.py',
}
SYNCBN_ROW = 'dsnet_t'
BASELINE = 'swin_t'
AMP_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}


# ------------------------------------------------------------------------------------ building

def load_config(spec: str):
    """A row's config: ``mmseg::x`` from mmseg's installed configs (``mmengine.hub.get_config``),
    else a path in this repository."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    return get_config(spec) if '::' in spec else Config.fromfile(str(ROOT / spec))


def build_seg(spec: str, size, cfg_options=None):
    """Segmentor of a config in train mode, randomly initialised (pretrained loading stripped),
    as :func:`det_scale.build` does for detectors; its data preprocessor pads to ``size`` (the
    configs' crop is 512x512, the step's size; the dry run's toy size would be padded to it)."""
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmvit_hybrid.utils.config_utils import strip_pretrained
    cfg = load_config(spec)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.data_preprocessor.size = tuple(size)
    cfg.model.pop('pretrained', None)  # mmseg's R50 config: pretrained='open-mmlab://resnet50_v1c'
    strip_pretrained(cfg.model)
    init_default_scope('mmseg')
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.train()


def det_batch(model, h: int, w: int, batch: int):
    """Preprocessed batch of ``batch`` seeded random images with 5 boxes and masks each
    (:func:`det_scale.make_batch` with a batch size)."""
    from mmdet.testing import demo_mm_inputs
    np.random.seed(0)
    packed = demo_mm_inputs(batch_size=batch, image_shapes=[(3, h, w)] * batch, num_items=[5] * batch,
                            num_classes=80, with_mask=True)
    return model.data_preprocessor(packed, True)


def seg_raw_batch(h: int, w: int, batch: int, num_classes: int = 150):
    """A data loader's batch (before the data preprocessor) of ``batch`` seeded random uint8
    images with random labels."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, h, w), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def seg_batch(model, h: int, w: int, batch: int):
    """:func:`seg_raw_batch` through the model's data preprocessor."""
    return model.data_preprocessor(seg_raw_batch(h, w, batch), True)


@contextlib.contextmanager
def cpu_amp_allowed(device: str):
    """mmengine 0.10.7's AmpOptimWrapper asserts a GPU at construction; on CPU (the dry run) the
    assertion is bypassed for that call only, so the same wrapper runs CPU autocast."""
    if device != 'cpu':
        yield
        return
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module
    real = amp_module.is_cuda_available
    amp_module.is_cuda_available = lambda: True
    try:
        yield
    finally:
        amp_module.is_cuda_available = real


def amp_wrapper(model, amp: str, device: str):
    from mmengine.optim import build_optim_wrapper
    cfg = dict(type='AmpOptimWrapper', dtype=AMP_DTYPES[amp], loss_scale='dynamic',
               optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
               clip_grad=dict(max_norm=35, norm_type=2))
    with cpu_amp_allowed(device), warnings_quiet():
        return build_optim_wrapper(model, cfg)


@contextlib.contextmanager
def warnings_quiet():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch.cuda.amp.GradScaler's deprecation, CPU GradScaler
        yield


def train_step(model, wrapper, data):
    """Forward (``mode='loss'``) under the wrapper's autocast, backward and update. Returns
    {loss name: float}."""
    torch.manual_seed(0)
    np.random.seed(0)
    with wrapper.optim_context(model):
        losses = model(inputs=data['inputs'], data_samples=copy.deepcopy(data['data_samples']), mode='loss')
    total, log_vars = model.parse_losses(losses)
    wrapper.update_params(total)
    return {k: float(v) for k, v in log_vars.items()}


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def free(device):
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()


def autocast(device, amp):
    return torch.autocast(device_type=device.split(':')[0], dtype=getattr(torch, AMP_DTYPES[amp]))


# --------------------------------------------------------------------------------- det and seg

def run_rows(kind, args):
    """Every row of ``det``/``seg``; returns the result dict written to ``--json``."""
    rows_table = DET_ROWS if kind == 'det' else SEG_ROWS
    rows = list(dict.fromkeys(args.rows or list(rows_table)))
    if BASELINE not in rows:
        rows.insert(0, BASELINE)
    h, w = args.size
    device = args.device
    results = []
    for name in rows:
        t0 = time.perf_counter()
        row = dict(row=name, config=rows_table[name], amp={})
        results.append(row)
        try:
            model = (det_scale.build(rows_table[name], args.cfg_options) if kind == 'det'
                     else build_seg(rows_table[name], args.size, args.cfg_options)).to(device)
            data = (det_batch if kind == 'det' else seg_batch)(model, h, w, args.batch)
            row['build_s'] = time.perf_counter() - t0
            for i, amp in enumerate(args.amp):
                wrapper = amp_wrapper(model, amp, device)
                if i == 0:  # FLOPs of one step (fwd + bwd), counted under the first dtype's autocast
                    with autocast(device, amp), warnings_quiet():
                        row['step_gflops'] = det_scale.step_flops(model, data) / 1e9
                with warnings_quiet():
                    warm = train_step(model, wrapper, data)
                    sync(device)
                    if device.startswith('cuda'):
                        torch.cuda.reset_peak_memory_stats()
                    times, last = [], warm
                    for _ in range(args.iters):
                        sync(device)
                        t = time.perf_counter()
                        last = train_step(model, wrapper, data)
                        sync(device)
                        times.append(time.perf_counter() - t)
                finite = all(math.isfinite(v) for v in (*warm.values(), *last.values()))
                entry = dict(step_s=statistics.median(times), times=times, loss=last.get('loss'),
                             losses=last, finite=finite,
                             loss_scale=float(wrapper.loss_scaler.get_scale())
                             if wrapper.loss_scaler.is_enabled() else None)
                if device.startswith('cuda'):
                    entry['peak_mib'] = torch.cuda.max_memory_allocated() / 2**20
                row['amp'][amp] = entry
                print(f'# {kind} {name} {amp}: {entry["step_s"] * 1e3:.1f} ms/step, loss {entry["loss"]:.4f}'
                      f'{", peak %.0f MiB" % entry["peak_mib"] if "peak_mib" in entry else ""}'
                      f'{"" if finite else " NON-FINITE LOSSES"}', flush=True)
                if not finite:
                    row['error'] = f'{amp}: non-finite losses {last}'
                del wrapper
                model.zero_grad(set_to_none=True)
            del model, data
        except Exception as exc:  # one row's failure (OOM, an op without a kernel) must not hide the others
            row['error'] = f'{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ""}'
            print(f'# {kind} {name}: FAILED: {row["error"]}\n{traceback.format_exc()}', flush=True)
        finally:
            free(device)
        row['row_s'] = time.perf_counter() - t0

    base = next((r for r in results if r['row'] == BASELINE and 'error' not in r), None)
    for r in results:
        for amp, e in r['amp'].items():
            b = base['amp'].get(amp) if base else None
            if b and 'step_gflops' in r:
                e['time_vs_swin_t'] = e['step_s'] / b['step_s']
                e['flops_vs_swin_t'] = r['step_gflops'] / base['step_gflops']
                e['time_per_flop_vs_swin_t'] = e['time_vs_swin_t'] / e['flops_vs_swin_t']
    return dict(kind=kind, device=device_name(device), torch=torch.__version__, size=[h, w],
                batch=args.batch, iters=args.iters, amp=args.amp, rows=results,
                ok=all('error' not in r for r in results))


# ------------------------------------------------------------------------------------- syncbn

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_syncbn(args):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
    device = args.device
    cuda = device.startswith('cuda')
    backend = 'nccl' if cuda else 'gloo'
    h, w = args.size
    amp = args.amp[0]
    result = dict(kind='syncbn', device=device_name(device), torch=torch.__version__, backend=backend,
                  row=SYNCBN_ROW, config=SEG_ROWS[SYNCBN_ROW], size=[h, w], batch=args.batch, amp=amp)
    t0 = time.perf_counter()
    try:
        model = build_seg(SEG_ROWS[SYNCBN_ROW], args.size, args.cfg_options).to(device)
        result['syncbn_modules'] = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
        reference = revert_sync_batchnorm(copy.deepcopy(model))  # the same weights, plain BN, no group
        data = seg_batch(model, h, w, args.batch)
        ref_loss = train_step(reference, amp_wrapper(reference, amp, device), data)['loss']
        del reference
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()), RANK='0', WORLD_SIZE='1',
                          LOCAL_RANK='0')
        dist.init_process_group(backend, rank=0, world_size=1)
        try:
            if not cuda:  # torch's SyncBatchNorm refuses CPU tensors once a group exists
                model = revert_sync_batchnorm(model)
                result['note'] = 'SyncBN reverted to BN on CPU (torch supports SyncBN on GPU only)'
            ddp = MMDistributedDataParallel(module=model, device_ids=[torch.cuda.current_device()] if cuda else None)
            wrapper = amp_wrapper(ddp, amp, device)
            raw = seg_raw_batch(h, w, args.batch)  # what `data` was made from
            losses, times = [], []
            for _ in range(args.iters):
                torch.manual_seed(0)
                sync(device)
                t = time.perf_counter()
                log_vars = ddp.train_step(copy.deepcopy(raw), optim_wrapper=wrapper)
                sync(device)
                times.append(time.perf_counter() - t)
                losses.append(float(log_vars['loss']))
            result.update(world_size=dist.get_world_size(), losses=losses, ref_loss=ref_loss,
                          step_s=statistics.median(times), times=times,
                          finite=all(math.isfinite(v) for v in losses + [ref_loss]))
            if cuda:
                result['peak_mib'] = torch.cuda.max_memory_allocated() / 2**20
        finally:
            dist.destroy_process_group()
        result['loss_rel_diff'] = abs(losses[0] - ref_loss) / max(abs(ref_loss), 1e-12)
        # the first DDP step sees the weights the reference saw; one process: SyncBN == BN
        result['ok'] = result['finite'] and result['loss_rel_diff'] < args.tol
        if not result['ok']:
            result['error'] = (f'losses {losses} vs reference {ref_loss} (rel diff '
                               f'{result["loss_rel_diff"]:.2e}, tol {args.tol})')
    except Exception as exc:
        result.update(ok=False, error=f'{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ""}')
        print(f'# syncbn: FAILED: {result["error"]}\n{traceback.format_exc()}', flush=True)
    result['row_s'] = time.perf_counter() - t0
    print(f'# syncbn ({backend}, {SYNCBN_ROW}, {amp}): ' + ('ok' if result['ok'] else 'FAILED') +
          f', losses {result.get("losses")} vs reference {result.get("ref_loss")}', flush=True)
    return result


def device_name(device):
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    from mmvit_hybrid.utils import cpu_name
    return cpu_name()


# ---------------------------------------------------------------------------------------- main

DEFAULTS = dict(det=dict(size=(800, 1344), batch=2, iters=3), seg=dict(size=(512, 512), batch=4, iters=3),
                syncbn=dict(size=(512, 512), batch=4, iters=2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('kind', choices=('det', 'seg', 'syncbn'))
    parser.add_argument('--rows', nargs='+', default=None,
                        help=f'det rows {list(DET_ROWS)} / seg rows {list(SEG_ROWS)} (default all)')
    parser.add_argument('--amp', nargs='+', default=None, choices=tuple(AMP_DTYPES),
                        help='AMP dtypes (default: bf16 fp16 on CUDA, bf16 on CPU; syncbn: the first)')
    parser.add_argument('--size', type=int, nargs=2, default=None, metavar=('H', 'W'),
                        help='det 800 1344, seg/syncbn 512 512 (defaults)')
    parser.add_argument('--batch', type=int, default=None, help='det 2, seg/syncbn 4 (defaults)')
    parser.add_argument('--iters', type=int, default=None, help='timed steps (det/seg 3, syncbn 2)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--tol', type=float, default=2e-2,
                        help='syncbn: relative tolerance of the first loss against the reference')
    parser.add_argument('--cfg-options', nargs='+', action=det_scale.DictAction, default={},
                        help='overrides merged into every row\'s config (the dry run shrinks the RoI heads\' '
                             'sample counts: model.train_cfg.rcnn.sampler.num=16)')
    parser.add_argument('--json', default=None, help='write the results here')
    args = parser.parse_args(argv)
    d = DEFAULTS[args.kind]
    args.size = args.size or list(d['size'])
    args.batch = args.batch or d['batch']
    args.iters = args.iters or d['iters']
    args.amp = args.amp or (['bf16', 'fp16'] if args.device.startswith('cuda') else ['bf16'])
    if args.device == 'cpu' and 'fp16' in args.amp:
        parser.error('mmengine runs CPU autocast in bf16 only')
    if args.rows:
        table = DET_ROWS if args.kind == 'det' else SEG_ROWS
        bad = [r for r in args.rows if r not in table]
        if bad:
            parser.error(f'unknown {args.kind} rows {bad}; choose from {list(table)}')
    if args.threads:
        torch.set_num_threads(args.threads)
    import mmvit_hybrid  # noqa: F401  (registers the package's modules)

    t0 = time.perf_counter()
    result = run_syncbn(args) if args.kind == 'syncbn' else run_rows(args.kind, args)
    result['wall_s'] = time.perf_counter() - t0
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
