"""One image (or a folder of images) in, the painted prediction out, for any config of this package.

The task follows the config's ``default_scope`` and the libraries' own Inferencers and visualizers
do the work:

* ``mmdet``: ``mmdet.apis.DetInferencer`` + ``DetLocalVisualizer`` (boxes, and masks for Mask R-CNN),
  written to ``OUT_DIR/vis/<image name>``;
* ``mmseg``: ``mmseg.apis.MMSegInferencer`` + ``SegLocalVisualizer`` (class overlay),
  written to ``OUT_DIR/vis/<image name>``;
* ``mmpretrain``: ``mmpretrain.apis.ImageClassificationInferencer`` + ``UniversalVisualizer``
  (the top-k classes and their scores), written to ``OUT_DIR/vis/<image stem>.png``.

Examples (from the repository root; CHECKPOINT is a runner checkpoint of the config, or a classifier
converted by tools/model_converters/*)::

    python demo/image_demo.py data/demo_coco/val/000000.png configs/demo/mask_rcnn_dsnet_t_demo.py \
        work_dirs/demo/epoch_8.pth --out-dir work_dirs/demo/image_demo
    python demo/image_demo.py demo/demo.jpg configs/dsnet/dsnet_t_in1k.py checkpoints/dsnet_t_in1k.pth
    python demo/image_demo.py street.png configs/dsnet/upernet_dsnet_t_cityscapes.py seg.pth --device cuda:0

``demo/demo.jpg`` is the portrait of Grace Hopper from matplotlib's sample data (a U.S. Navy
photograph, public domain).

Class names come from the checkpoint's ``meta['dataset_meta']`` (every checkpoint written by
tools/train.py has it); a checkpoint without them (e.g. a converted ImageNet classifier) gets the
names of the config's test dataset (its ``metainfo``, else the dataset class's ``METAINFO``).
"""
import argparse
import os
import os.path as osp
import sys
import time
import warnings

import torch

TASKS = ('mmdet', 'mmseg', 'mmpretrain')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('img', help='an image file, or a folder of images')
    parser.add_argument('config', help='config file of an mmdet, mmseg or mmpretrain model')
    parser.add_argument('checkpoint', help='checkpoint file (local path or URL)')
    parser.add_argument('--out-dir', default='outputs',
                        help='the pictures are written to OUT_DIR/vis/ (default: outputs)')
    parser.add_argument('--device', default=None,
                        help="e.g. 'cpu' or 'cuda:0' (default: cuda:0 if available, else cpu)")
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw boxes and masks scoring at least this (default 0.3)')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='segmentation: opacity of the class overlay (default 0.5)')
    parser.add_argument('--topk', type=int, default=5,
                        help='classification: how many classes to write on the image (default 5)')
    return parser.parse_args(argv)


def config_classes(cfg, scope):
    """Class names (and palette) of the config's test dataset: its ``metainfo`` if the config sets
    one, else the dataset class's ``METAINFO``; ``{}`` if neither is known."""
    import importlib
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    while 'dataset' in dataset and 'type' not in dataset:  # wrappers without a type of their own
        dataset = dataset['dataset']
    meta = dict(dataset.get('metainfo') or {})
    if 'classes' not in meta and isinstance(dataset.get('type'), str):
        registry = importlib.import_module(f'{scope}.registry').DATASETS
        dataset_cls = registry.get(dataset['type'])
        meta = {**dict(getattr(dataset_cls, 'METAINFO', {}) or {}), **meta}
    return {k: meta[k] for k in ('classes', 'palette') if meta.get(k) is not None}


def checkpoint_has_classes(checkpoint):
    """Does the checkpoint carry ``meta['dataset_meta']['classes']`` (or the 0.x ``CLASSES``)?"""
    from mmengine.runner import load_checkpoint  # noqa: F401  (the package's loader is registered)
    from mmengine.runner.checkpoint import _load_checkpoint
    meta = _load_checkpoint(checkpoint, map_location='cpu').get('meta') or {}
    return bool((meta.get('dataset_meta') or {}).get('classes') or meta.get('CLASSES'))


def written(out_dir, since):
    """The image files under ``out_dir`` written at or after the time ``since``."""
    found = []
    for root, _, files in os.walk(out_dir):
        found += [osp.join(root, f) for f in files if f.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(p for p in found if osp.getmtime(p) >= since)


def run_detection(args, cfg, classes):
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=cfg, weights=args.checkpoint, device=args.device,
                               show_progress=False)
    if classes:  # the checkpoint has none: use the config's, not the inferencer's COCO fallback
        inferencer.model.dataset_meta = dict(inferencer.model.dataset_meta or {}, **classes)
        inferencer.visualizer.dataset_meta = inferencer.model.dataset_meta
    inferencer(args.img, out_dir=args.out_dir, pred_score_thr=args.score_thr, no_save_pred=True)


def run_segmentation(args, cfg, classes):
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(model=cfg, weights=args.checkpoint, device=args.device,
                                 classes=classes.get('classes'), palette=classes.get('palette'))
    inferencer(args.img, out_dir=args.out_dir, img_out_dir='vis', opacity=args.opacity)


def run_classification(args, cfg, classes):
    from mmpretrain.apis import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(model=cfg, pretrained=args.checkpoint,
                                               device=args.device, classes=classes.get('classes'))
    inputs = [args.img]
    if osp.isdir(args.img):
        inputs = sorted(osp.join(args.img, f) for f in os.listdir(args.img)
                        if f.lower().endswith(IMAGE_SUFFIXES))
    samples = inferencer(inputs, return_datasamples=True)
    for sample in samples:  # the inferencer keeps the top-1 class only: paint the top k
        k = min(args.topk, sample.pred_score.numel())
        sample.set_pred_label(sample.pred_score.topk(k).indices)
    os.makedirs(args.out_dir, exist_ok=True)
    inferencer.visualize(inputs, samples, show_dir=osp.join(args.out_dir, 'vis'))
    for path, sample in zip(inputs, samples):
        names = inferencer.classes
        top = '; '.join(f'{names[i] if names else i} ({sample.pred_score[i]:.4f})'
                        for i in sample.pred_label.tolist())
        print(f'{path}: {top}')


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    import mmvit_hybrid  # noqa: F401  (registers the backbones; the configs import it too)
    if not osp.exists(args.img):
        sys.exit(f'error: {args.img} does not exist')
    if args.device is None:
        args.device = 'cuda:0' if torch.cuda.is_available() else 'cpu'
    cfg = Config.fromfile(args.config)
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        sys.exit(f"error: {args.config} has default_scope={scope!r}; this demo handles {TASKS}")
    classes = {}
    if not checkpoint_has_classes(args.checkpoint):
        classes = config_classes(cfg, scope)
        if classes:
            print(f'{args.checkpoint} carries no class names; using the {len(classes["classes"])} '
                  f"of the config's test dataset")
    args.out_dir = osp.abspath(args.out_dir)
    start = time.time() - 1  # file systems with 1 s timestamps
    with warnings.catch_warnings():
        # the Inferencers warn that a checkpoint without class names gets a default dataset's,
        # which is replaced above
        warnings.filterwarnings('ignore', message='dataset_meta or class names are not saved')
        {'mmdet': run_detection, 'mmseg': run_segmentation,
         'mmpretrain': run_classification}[scope](args, cfg, classes)
    pictures = written(args.out_dir, start)
    if not pictures:
        sys.exit(f'error: no picture was written under {args.out_dir}')
    for path in pictures:
        print(f'wrote {path}')
    return pictures


if __name__ == '__main__':
    main()
