"""Post-install check: which compiled ops have CUDA kernels.

Reports mmcv's ``mmcv._ext`` (RoIAlign, NMS, ... used by Mask R-CNN) and this package's
``mmvit_hybrid._ext`` (outlook attention), and exits 1 loudly when a GPU is visible but one of
them was built without CUDA kernels, or when the compiled ops are missing. With a GPU,
``--smoke`` also runs each library's CUDA kernels once against a CPU result. The verdict is
``mmvit_hybrid.ops.build_config.verdict`` (tested on CPU in tests/test_build.py).

Usage::

    python tools/misc/check_ops.py                       # run by tools/install.sh
    python tools/misc/check_ops.py --only mmvit_hybrid --smoke   # torch-only machines
"""
import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

import torch  # noqa: E402

from mmvit_hybrid.ops.build_config import verdict  # noqa: E402

LIBS = ('mmcv', 'mmvit_hybrid')


def mmcv_cuda():
    """True/False: mmcv's ops compiled with/without CUDA; None: no compiled mmcv ops."""
    try:
        from mmcv.ops import get_compiling_cuda_version
    except ImportError:
        return None
    return get_compiling_cuda_version() not in ('not available', '')


def mmvit_hybrid_cuda():
    """True/False: mmvit_hybrid._ext compiled with/without CUDA; None: not built."""
    module = importlib.import_module('mmvit_hybrid.ops.outlook_attention')
    return module._ext.with_cuda() if module._EXT_AVAILABLE else None


def smoke(lib):
    """Run ``lib``'s CUDA kernels once and compare with CPU; returns a report line."""
    gen = torch.Generator().manual_seed(0)
    if lib == 'mmcv':
        from mmcv.ops import nms, roi_align
        boxes = torch.rand(64, 4, generator=gen) * 50
        boxes[:, 2:] += boxes[:, :2]
        scores = torch.rand(64, generator=gen)
        keep_cpu = nms(boxes, scores, 0.5)[1]
        keep_gpu = nms(boxes.cuda(), scores.cuda(), 0.5)[1].cpu()
        feat = torch.randn(1, 4, 16, 16, generator=gen)
        rois = torch.tensor([[0, 1.0, 1.0, 9.0, 12.0]])
        ra_cpu = roi_align(feat, rois, (3, 3), 1.0, 2, 'avg', True)
        ra_gpu = roi_align(feat.cuda(), rois.cuda(), (3, 3), 1.0, 2, 'avg', True).cpu()
        ok = torch.equal(keep_cpu, keep_gpu) and torch.allclose(ra_cpu, ra_gpu, atol=1e-5)
        return ok, 'mmcv nms + roi_align on CUDA ' + ('match CPU' if ok else 'DIFFER from CPU')
    from mmvit_hybrid.ops import outlook_attention
    value = torch.randn(2, 12, 9, 11, generator=gen, dtype=torch.float64)
    attn = torch.randn(2, 3, 5, 6, 9, 9, generator=gen, dtype=torch.float64).softmax(-1)
    cpu = outlook_attention(value, attn, 3, 1, 2)
    gpu = outlook_attention(value.cuda(), attn.cuda(), 3, 1, 2).cpu()
    ok = torch.allclose(cpu, gpu, rtol=1e-12, atol=1e-12)
    return ok, 'mmvit_hybrid outlook attention on CUDA ' + ('matches CPU' if ok else 'DIFFERS from CPU')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', nargs='+', choices=LIBS, default=list(LIBS),
                        help='libraries to check (default: both)')
    parser.add_argument('--smoke', action='store_true',
                        help='with a GPU, run each library\'s CUDA kernels once')
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available()
    probes = {'mmcv': mmcv_cuda, 'mmvit_hybrid': mmvit_hybrid_cuda}
    libs = {name: probes[name]() for name in args.only}
    ok, lines = verdict(gpu, libs)
    print(f'[check_ops] torch {torch.__version__} (CUDA build {torch.version.cuda}), GPU visible: '
          f'{gpu}' + (f' ({torch.cuda.get_device_name(0)})' if gpu else ''))
    for line in lines:
        print(f'[check_ops] {line}')
    if ok and gpu and args.smoke:
        for name in args.only:
            passed, line = smoke(name)
            ok &= passed
            print(f'[check_ops] {"ok  " if passed else "FAIL"} {line}')
    if not ok:
        print('[check_ops] FAILED: see the lines above', file=sys.stderr)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
