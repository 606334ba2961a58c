"""demo/image_demo.py: one image in, the painted prediction out, for detection, segmentation and
classification, through the libraries' own Inferencers.

Each path gets a real checkpoint: for classification, timm's VOLO-D1 with random weights converted by
tools/model_converters/volo_to_mmvit.py (the path a user takes with published weights); for detection
and segmentation (the converters write backbones only), the demo configs' models randomly
initialised and saved the way the runner saves them, with and without class names in their meta.
The picture must exist, be an image of the input's size (read back with mmcv), and differ from the
input (something was drawn). The script runs forked from a warm interpreter (tests/warm_tools.py).
"""
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from warm_tools import run_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = 'demo/image_demo.py'
DET_CONFIG = osp.join(ROOT, 'configs/demo/mask_rcnn_dsnet_t_demo.py')
SEG_CONFIG = osp.join(ROOT, 'configs/demo/upernet_dsnet_t_demo.py')
CLS_CONFIG = osp.join(ROOT, 'configs/volo/volo_d1_in1k.py')
VOLO_CONVERTER = osp.join(ROOT, 'tools/model_converters/volo_to_mmvit.py')

pytestmark = pytest.mark.usefixtures('one_thread')


def write_image(path, height, width, seed=0):
    """A smooth random colour image with a few bright blobs (PNG, BGR on disk)."""
    import mmcv
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([80 + 60 * np.sin(xx / 7 + c) + 40 * np.cos(yy / 5 - c) for c in range(3)], -1)
    for _ in range(3):
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(6, 16)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    mmcv.imwrite(img, str(path))
    return img


def random_checkpoint(config, path, with_classes):
    """The config's model, randomly initialised, saved as a runner checkpoint would be."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import mmvit_hybrid  # noqa: F401
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.init_weights()
    meta = {}
    if with_classes:
        meta['dataset_meta'] = dict(cfg.test_dataloader.dataset.metainfo)
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, str(path))
    return path


def run_demo(*args):
    code, out = run_tool(DEMO, *[str(a) for a in args])
    assert code == 0, out[-4000:]
    return out


def only_picture(out_dir, name):
    """The one picture the demo wrote for ``name`` (the path it printed must be that file)."""
    import mmcv
    path = osp.join(out_dir, 'vis', name)
    assert osp.isfile(path), f'{path} missing'
    return path, mmcv.imread(path)


def assert_painted_on(picture, img, min_mean_abs_diff):
    assert picture.shape == img.shape, (picture.shape, img.shape)
    diff = np.abs(picture.astype(float) - img.astype(float)).mean()
    assert diff > min_mean_abs_diff, f'the picture is (nearly) the input: mean |diff| {diff:.3f}'


# --------------------------------------------------------------------------------------- detection
@pytest.mark.parametrize('with_classes', [True, False])
def test_detection_picture(tmp_path, with_classes):
    img = write_image(tmp_path / 'street.png', 96, 144)
    ckpt = random_checkpoint(DET_CONFIG, tmp_path / 'det.pth', with_classes)
    out = run_demo(tmp_path / 'street.png', DET_CONFIG, ckpt, '--out-dir', tmp_path / 'out',
                   '--device', 'cpu', '--score-thr', '0')  # random weights: draw every detection
    path, picture = only_picture(tmp_path / 'out', 'street.png')
    assert f'wrote {path}' in out
    assert_painted_on(picture, img, 0.5)
    # without class names in the checkpoint, the config's four classes replace mmdet's COCO fallback
    assert ('carries no class names' in out) == (not with_classes)


# ------------------------------------------------------------------------------------ segmentation
def test_segmentation_picture(tmp_path):
    img = write_image(tmp_path / 'tile.png', 64, 96, seed=1)
    ckpt = random_checkpoint(SEG_CONFIG, tmp_path / 'seg.pth', with_classes=False)
    out = run_demo(tmp_path / 'tile.png', SEG_CONFIG, ckpt, '--out-dir', tmp_path / 'out',
                   '--device', 'cpu', '--opacity', '0.6')
    path, picture = only_picture(tmp_path / 'out', 'tile.png')
    assert f'wrote {path}' in out and 'carries no class names' in out
    assert_painted_on(picture, img, 5.0)  # an overlay at 0.6 opacity changes every pixel


# ---------------------------------------------------------------------------------- classification
@pytest.fixture(scope='module')
def converted_volo(tmp_path_factory):
    """timm's VOLO-D1 with random weights -> tools/model_converters/volo_to_mmvit.py."""
    import timm
    tmp = tmp_path_factory.mktemp('volo')
    torch.manual_seed(0)
    reference = timm.create_model('volo_d1_224', pretrained=False)
    torch.save(reference.state_dict(), tmp / 'volo_d1_timm.pth')
    out = subprocess.run([sys.executable, VOLO_CONVERTER, str(tmp / 'volo_d1_timm.pth'),
                          str(tmp / 'volo_d1_in1k.pth')], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return tmp / 'volo_d1_in1k.pth'


def test_classification_picture_names_the_top5(tmp_path, converted_volo):
    from mmpretrain.datasets import ImageNet
    img = write_image(tmp_path / 'cat.png', 80, 100, seed=2)
    out = run_demo(tmp_path / 'cat.png', CLS_CONFIG, converted_volo, '--out-dir', tmp_path / 'out',
                   '--device', 'cpu')
    path, picture = only_picture(tmp_path / 'out', 'cat.png')
    assert f'wrote {path}' in out
    assert_painted_on(picture, img, 0.5)
    # the printed top-5: ImageNet names (the converted checkpoint has none; the config's dataset
    # class does), distinct, with probabilities in decreasing order
    [line] = [l for l in out.splitlines() if l.startswith(str(tmp_path / 'cat.png') + ':')]
    entries = [re.fullmatch(r'(.+) \(([\d.]+)\)', e) for e in line.split(': ', 1)[1].split('; ')]
    assert len(entries) == 5 and all(entries), line
    names = [e.group(1) for e in entries]
    scores = [float(e.group(2)) for e in entries]
    classes = ImageNet.METAINFO['classes']
    assert all(n in classes for n in names) and len(set(names)) == 5, names
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-3, scores


def test_folder_input_and_wrong_scope(tmp_path, converted_volo):
    """A folder of images gives one picture each; a config outside the three libraries stops with
    a one-line error instead of a traceback."""
    for i in range(2):
        write_image(tmp_path / 'imgs' / f'{i}.png', 40 + 8 * i, 50, seed=i)
    out = run_demo(tmp_path / 'imgs', CLS_CONFIG, converted_volo, '--out-dir', tmp_path / 'out',
                   '--device', 'cpu', '--topk', '3')
    assert len(re.findall(r'^wrote ', out, re.M)) == 2
    for i in range(2):
        assert len([l for l in out.splitlines() if l.startswith(str(tmp_path / 'imgs' / f'{i}.png'))][0]
                   .split('; ')) == 3
    cfg = tmp_path / 'other_scope.py'
    cfg.write_text("default_scope = 'mmocr'\nmodel = dict(type='X')\n")
    code, out = run_tool(DEMO, str(tmp_path / 'imgs'), str(cfg), str(converted_volo))
    assert code != 0 and "default_scope='mmocr'" in out and 'Traceback' not in out
