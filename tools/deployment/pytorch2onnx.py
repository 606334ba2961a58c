"""Export a config's model to ONNX: mmpretrain classifiers (logits), mmseg segmentors (logits at the
input size, as ``encode_decode``), mmdet detectors (the backbone + neck feature pyramid).

The graph takes the preprocessed image (B, 3, H, W) named ``input``; the normalisation to apply
first (mean, std, channel order) is written to ``FILE.json`` next to the model, with the exporter,
opset, output names and shapes. No custom ONNX domain: the package's fused outlook-attention op
exports as standard Gather/MatMul nodes (``mmvit_hybrid/deployment/outlook_onnx.py``).

Examples:
    python tools/deployment/pytorch2onnx.py configs/volo/volo_d1_in1k.py work_dirs/volo/epoch_300.pth \\
        --shape 224 224 --out volo_d1.onnx
    python tools/deployment/pytorch2onnx.py configs/dsnet/upernet_dsnet_t_ade20k.py CKPT --shape 512 512 \\
        --dynamic-shape --verify
    python tools/deployment/pytorch2onnx.py configs/botnet/mask_rcnn_botnet50_coco.py CKPT --shape 800 1216

See docs/deployment.md.
"""
import argparse
import sys
import time

import torch
from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a classifier, segmentor or detector backbone+neck to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint (runner checkpoint or state dict); without it the weights are random')
    parser.add_argument('--shape', type=int, nargs=2, required=True, metavar=('H', 'W'),
                        help='input height and width of the example input')
    parser.add_argument('--dynamic-shape', action='store_true', help='make H and W dynamic')
    parser.add_argument('--opset', type=int, default=18, help='ai.onnx opset (default 18)')
    parser.add_argument('--out', default=None, help='output file (default: the config name + .onnx)')
    parser.add_argument('--exporter', choices=['auto', 'dynamo', 'torchscript'], default='auto',
                        help='torch.onnx exporter; auto picks per backbone (see docs/deployment.md)')
    parser.add_argument('--batch', type=int, default=1, help='batch size (fixed axis, default 1)')
    parser.add_argument('--verify', action='store_true',
                        help='run onnxruntime (CPU) at the export size, and at a second size when dynamic, '
                        'and print the max abs difference to PyTorch')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def verify(model, kind, path, shape, dynamic, batch):
    """Compare onnxruntime with PyTorch eval at ``shape`` (and a second size when dynamic)."""
    from mmvit_hybrid.deployment.export import ExportWrapper, log, run_onnxruntime
    wrapper = ExportWrapper(model, kind).eval()
    sizes = [tuple(shape)] + ([(shape[0] + 32, shape[1] + 48)] if dynamic else [])
    worst = 0.
    for h, w in sizes:
        x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ref = wrapper(x)
        ref = ref if isinstance(ref, tuple) else (ref, )
        got = run_onnxruntime(path, x)
        here = 0.  # this size's worst output
        for r, g in zip(ref, got):
            if tuple(r.shape) != tuple(g.shape):
                raise RuntimeError(f'onnxruntime output shape {g.shape} != PyTorch {tuple(r.shape)} at {h}x{w}')
            diff = (torch.from_numpy(g) - r).abs().max().item() / max(r.abs().max().item(), 1e-12)
            here = max(here, diff)
        log(f'onnxruntime vs PyTorch at {h}x{w}: max abs diff / output scale = {here:.2e}')
        worst = max(worst, here)
    return worst


def main(argv=None):
    args = parse_args(argv)
    from mmvit_hybrid.deployment.export import ExportError, build_model, export, load_checkpoint, load_config, log
    import os.path as osp
    start = time.time()
    try:
        if args.batch < 1:
            raise ExportError(f'--batch must be >= 1, got {args.batch}')
        if min(args.shape) < 1:
            raise ExportError(f'--shape takes positive H W, got {args.shape}')
        log(f'[1/4] reading config {args.config}')
        cfg = load_config(args.config, args.cfg_options)
        log('[2/4] building the model')
        model, kind = build_model(cfg, args.config)
        backbone = type(getattr(model, 'backbone', model)).__name__
        log(f'      {type(model).__name__} ({kind}) with a {backbone} backbone')
        if args.checkpoint:
            log(f'      loading checkpoint {args.checkpoint}')
            load_checkpoint(model, args.checkpoint)
        else:
            log('      no checkpoint given: exporting random weights')
        out = args.out or osp.splitext(osp.basename(args.config))[0] + '.onnx'
        log(f'[3/4] exporting at {args.shape[0]}x{args.shape[1]}')
        info = export(model, kind, args.shape, out, opset=args.opset, dynamic=args.dynamic_shape,
                      exporter=args.exporter, batch=args.batch)
    except ExportError as err:
        print(f'pytorch2onnx: error: {err}', file=sys.stderr)
        return 2
    if args.verify:
        log('[4/4] checking with onnxruntime')
        info['max_rel_diff'] = verify(model, kind, out, args.shape, args.dynamic_shape, args.batch)
    else:
        log('[4/4] done (pass --verify to compare with onnxruntime)')
    log(f'wrote {out} and {osp.splitext(out)[0]}.json in {time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
