"""The segmentation and classification demos: their data generators, and a short train + test of
each demo config through tools/train.py and tools/test.py (separate processes forked from a warm
interpreter, tests/warm_tools.py; tiny data, CPU).

The full-length demo runs and their metrics are in configs/demo/README.md; here the tools only
have to run the configs end to end: 2 training iterations, then evaluation with mmseg's IoUMetric
(and painted predictions from --show-dir) or mmpretrain's Accuracy. What tools/test.py reports is
checked against an independent computation: the checkpoint run in this process on the validation
images (its scores must equal those test.py dumped with --out), and the metric counted here with
numpy from those predictions and the annotation files / folder names.
"""
import filecmp
import json
import os
import os.path as osp
import re
import subprocess
import sys
from glob import glob

import numpy as np
import pytest
import torch
from warm_tools import run_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG_CONFIG = osp.join(ROOT, 'configs/demo/upernet_dsnet_t_demo.py')
CLS_CONFIG = osp.join(ROOT, 'configs/demo/dsnet_t_cls_demo.py')
MAKE_ADE = osp.join(ROOT, 'tools/misc/make_demo_ade.py')
MAKE_CLS = osp.join(ROOT, 'tools/misc/make_demo_cls.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
SEG_CLASSES = ('background', 'stripes', 'checker', 'dots')
CLS_CLASSES = ('circle', 'rectangle', 'ring', 'triangle')  # sub-folder names, sorted


def generate(script, out, *args):
    subprocess.run([sys.executable, script, '--out', str(out), *args], check=True, capture_output=True)


def run(script, *args):
    """Run ``tools/<script>`` from the repo root, forked from the warm interpreter
    (tests/warm_tools.py); return its output."""
    code, out = run_tool(osp.join('tools', script), *args)
    assert code == 0, out[-3000:]
    return out


def cfg_options(data_root, batch, **extra):
    opts = dict(extra)
    for loader in LOADERS:
        opts.update({f'{loader}.dataset.data_root': data_root, f'{loader}.batch_size': batch})
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def predict_in_process(config, ckpt, data_root, scope):
    """The checkpoint's predictions on the config's test split, one data sample per image, from a
    model built and loaded here (not through tools/test.py's runner and evaluator)."""
    import importlib

    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry')
    cfg = Config.fromfile(config)
    cfg.test_dataloader.dataset.data_root = data_root
    dataset = registry.DATASETS.build(cfg.test_dataloader.dataset)
    if 'data_preprocessor' not in cfg.model:  # mmpretrain keeps it at the top level
        cfg.model.data_preprocessor = cfg.data_preprocessor
    model = registry.MODELS.build(cfg.model).eval()
    load_checkpoint(model, ckpt, map_location='cpu', strict=True)
    with torch.no_grad():
        return [model.test_step(pseudo_collate([dataset[i]]))[0] for i in range(len(dataset))]


def numpy_seg_metrics(preds, labels, num_classes):
    """mmseg's IoUMetric definitions: per-class IoU = |P & G| / |P | G| and accuracy = |P & G| / |G|
    summed over all images, their means over the classes where they are defined, aAcc = correct
    pixels / labelled pixels; percentages rounded to 2 decimals."""
    inter, union, area = np.zeros(num_classes), np.zeros(num_classes), np.zeros(num_classes)
    for pred, label in zip(preds, labels):
        valid = label != 255
        pred, label = pred[valid], label[valid]
        for c in range(num_classes):
            inter[c] += np.sum((pred == c) & (label == c))
            union[c] += np.sum((pred == c) | (label == c))
            area[c] += np.sum(label == c)
    with np.errstate(invalid='ignore', divide='ignore'):
        iou, acc = inter / union, inter / area
    return dict(aAcc=round(100 * inter.sum() / area.sum(), 2), mIoU=round(100 * np.nanmean(iou), 2),
                mAcc=round(100 * np.nanmean(acc), 2))


def read_metrics(work_dir):
    """The metrics tools/test.py logged to ``work_dir/<timestamp>/<timestamp>.json``."""
    [path] = glob(osp.join(work_dir, '*', '*.json'))
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------------------------
# make_demo_ade.py
# --------------------------------------------------------------------------------------------
ADE_ARGS = ('--num-train', '6', '--num-val', '3', '--img-size', '64')


@pytest.fixture(scope='module')
def ade(tmp_path_factory):
    out = tmp_path_factory.mktemp('ade')
    generate(MAKE_ADE, out, *ADE_ARGS)
    return out


def test_ade_layout_and_label_encoding(ade):
    import mmcv
    for split, num in (('training', 6), ('validation', 3)):
        images = sorted(os.listdir(ade / 'images' / split))
        assert images == sorted(os.listdir(ade / 'annotations' / split))
        assert len(images) == num
        for name in images:
            img = mmcv.imread(str(ade / 'images' / split / name))
            label = mmcv.imread(str(ade / 'annotations' / split / name), flag='unchanged')
            assert img.shape == (64, 64, 3) and label.shape == (64, 64)
            # ADE20K encoding: 0 unlabelled (unused here), classes 1..K, background present
            assert set(np.unique(label)) <= set(range(1, len(SEG_CLASSES) + 1))
            assert (label == 1).any() and (label > 1).any(), name
            # the labels lie on the pixels they name: each texture class has its own colour family
            # (stripes warm, checker green, dots blue), so its pixels' mean colour is dominated by
            # that channel
            rgb = mmcv.imread(str(ade / 'images' / split / name), channel_order='rgb').astype(float)
            for value, channel in ((2, 0), (3, 1), (4, 2)):
                if (label == value).sum() >= 20:
                    assert rgb[label == value].mean(0).argmax() == channel, (name, value)


def test_ade_deterministic_and_seeded(ade, tmp_path):
    generate(MAKE_ADE, tmp_path / 'same', *ADE_ARGS)
    for rel in ['images/training/demo_train_000000.png', 'annotations/training/demo_train_000005.png',
                'images/validation/demo_val_000002.png', 'annotations/validation/demo_val_000002.png']:
        assert filecmp.cmp(ade / rel, tmp_path / 'same' / rel, shallow=False), rel
    generate(MAKE_ADE, tmp_path / 'other', *ADE_ARGS, '--seed', '1')
    rel = 'images/training/demo_train_000000.png'
    assert not filecmp.cmp(ade / rel, tmp_path / 'other' / rel, shallow=False)


def test_seg_demo_dataset_reads_generator_output(ade):
    """The demo config's dataset finds every pair and maps labels 1..K to classes 0..K-1."""
    import mmcv
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = Config.fromfile(SEG_CONFIG)
    for loader, num in (('train_dataloader', 6), ('val_dataloader', 3)):
        ds_cfg = cfg[loader].dataset
        ds_cfg.data_root = str(ade)
        dataset = DATASETS.build(ds_cfg)
        assert len(dataset) == num
        assert dataset.metainfo['classes'] == SEG_CLASSES
        sample = dataset[0]['data_samples']
        label = sample.gt_sem_seg.data.numpy()
        raw = mmcv.imread(sample.seg_map_path, flag='unchanged').astype(int)
        if loader == 'val_dataloader':  # no flips: the map is the file's, shifted by one
            np.testing.assert_array_equal(label[0], raw - 1)
        assert set(np.unique(label)) <= set(range(len(SEG_CLASSES)))


# --------------------------------------------------------------------------------------------
# make_demo_cls.py
# --------------------------------------------------------------------------------------------
CLS_ARGS = ('--num-train', '2', '--num-val', '1', '--img-size', '32')


@pytest.fixture(scope='module')
def cls_data(tmp_path_factory):
    out = tmp_path_factory.mktemp('cls')
    generate(MAKE_CLS, out, *CLS_ARGS)
    return out


def test_cls_layout(cls_data):
    import mmcv
    for split, num in (('train', 2), ('val', 1)):
        assert sorted(os.listdir(cls_data / split)) == list(CLS_CLASSES)
        for name in CLS_CLASSES:
            files = sorted(os.listdir(cls_data / split / name))
            assert len(files) == num
            img = mmcv.imread(str(cls_data / split / name / files[0]))
            assert img.shape == (32, 32, 3) and img.std() > 5


def test_cls_deterministic_and_seeded(cls_data, tmp_path):
    generate(MAKE_CLS, tmp_path / 'same', *CLS_ARGS)
    for rel in ['train/circle/000000.png', 'train/ring/000001.png', 'val/triangle/000000.png']:
        assert filecmp.cmp(cls_data / rel, tmp_path / 'same' / rel, shallow=False), rel
    generate(MAKE_CLS, tmp_path / 'other', *CLS_ARGS, '--seed', '1')
    assert not filecmp.cmp(cls_data / 'train/circle/000000.png',
                           tmp_path / 'other/train/circle/000000.png', shallow=False)


# --------------------------------------------------------------------------------------------
# the demos through tools/train.py and tools/test.py
# --------------------------------------------------------------------------------------------
def test_seg_demo_train_test_show_dir(ade, tmp_path):
    import mmcv
    work_dir = str(tmp_path / 'work_dir')
    data_root = str(ade) + '/'
    log = run('train.py', SEG_CONFIG, '--work-dir', work_dir,
              *cfg_options(data_root, 2, **{'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                                            'default_hooks.logger.interval': 1,
                                            'default_hooks.checkpoint.interval': 2}))
    assert 'Iter(train) [2/2]' in log
    assert 'mIoU' in log  # validation after the last iteration
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)

    test_dir, show_dir, dump = str(tmp_path / 'test'), str(tmp_path / 'vis'), str(tmp_path / 'preds.pkl')
    log = run('test.py', SEG_CONFIG, ckpt, '--work-dir', test_dir, '--show-dir', show_dir, '--out', dump,
              *cfg_options(data_root, 2))
    for name in SEG_CLASSES:  # mmseg's per-class table
        assert name in log

    # the metrics, recomputed: this process's predictions of the checkpoint (the same scores
    # test.py dumped) against the annotation files, ADE-encoded (1..K -> 0..K-1, 0 ignored)
    import mmengine
    samples = predict_in_process(SEG_CONFIG, ckpt, data_root, 'mmseg')
    dumped = {osp.basename(d['img_path']): d for d in mmengine.load(dump)}
    assert sorted(dumped) == sorted(osp.basename(s.img_path) for s in samples) and len(samples) == 3
    preds, labels = [], []
    for sample in samples:
        logits = dumped[osp.basename(sample.img_path)]['seg_logits']['data']
        torch.testing.assert_close(logits, sample.seg_logits.data, rtol=1e-4, atol=1e-4)
        preds.append(sample.pred_sem_seg.data[0].numpy())
        raw = mmcv.imread(sample.seg_map_path, flag='unchanged').astype(int)
        labels.append(np.where(raw == 0, 255, raw - 1))
    expected = numpy_seg_metrics(preds, labels, len(SEG_CLASSES))
    metrics = read_metrics(test_dir)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=0.011), (key, metrics, expected)

    # --show-dir: one painted file per validation image (every batch, not every 50th), showing
    # the ground truth and the prediction side by side over the image
    painted = sorted(glob(osp.join(show_dir, '**', '*.png'), recursive=True))
    assert len(painted) == 3, painted
    for path in painted:
        assert osp.basename(path).startswith('test_demo_val_')
        vis = mmcv.imread(path)
        assert vis.shape[0] == 64 and vis.shape[1] >= 2 * 64
        assert vis.std() > 5  # not a blank canvas
        src_name = osp.basename(path)[len('test_'):].split('.png')[0] + '.png'  # test_<name>_<step>.png
        src = mmcv.imread(str(ade / 'images/validation' / src_name))
        assert vis[:, 64:].shape == src.shape
        assert not np.array_equal(vis[:, 64:], src)  # the prediction is painted over the image


def test_cls_demo_train_test(cls_data, tmp_path):
    work_dir = str(tmp_path / 'work_dir')
    data_root = str(cls_data)
    log = run('train.py', CLS_CONFIG, '--work-dir', work_dir,
              *cfg_options(data_root, 4, **{'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
                                            'default_hooks.logger.interval': 1}))
    assert re.search(r'Epoch\(train\) +\[1\]\[2/2\]', log)  # 8 images, batch 4
    assert 'accuracy/top1' in log
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(ckpt)

    test_dir, dump = str(tmp_path / 'test'), str(tmp_path / 'preds.pkl')
    run('test.py', CLS_CONFIG, ckpt, '--work-dir', test_dir, '--out', dump, *cfg_options(data_root, 4))

    # top-1 recomputed: this process's predictions of the checkpoint (the same scores test.py
    # dumped) against the class of each image's folder
    import mmengine
    samples = predict_in_process(CLS_CONFIG, ckpt, data_root, 'mmpretrain')
    dumped = {d['img_path']: d for d in mmengine.load(dump)}
    assert sorted(dumped) == sorted(s.img_path for s in samples) and len(samples) == len(CLS_CLASSES)
    correct = 0
    for sample in samples:
        torch.testing.assert_close(dumped[sample.img_path]['pred_score'], sample.pred_score, rtol=1e-4, atol=1e-5)
        truth = CLS_CLASSES.index(osp.basename(osp.dirname(sample.img_path)))
        correct += int(sample.pred_score.argmax()) == truth
    metrics = read_metrics(test_dir)
    assert metrics['accuracy/top1'] == pytest.approx(100 * correct / len(samples), abs=1e-4), metrics
