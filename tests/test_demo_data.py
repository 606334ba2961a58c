"""The synthetic demo dataset: deterministic, valid COCO, annotations consistent with the pixels."""
import filecmp
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCRIPT = osp.join(ROOT, 'tools/misc/make_demo_coco.py')


def generate(out, *extra):
    subprocess.run([sys.executable, SCRIPT, '--out', str(out), '--num-train', '6', '--num-val', '3',
                    '--img-size', '64', *extra], check=True, capture_output=True)


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo_a')
    generate(out)
    return out


def test_same_arguments_give_identical_files(demo, tmp_path):
    generate(tmp_path)
    for rel in ['annotations/instances_train.json', 'annotations/instances_val.json',
                'train/000000.png', 'train/000005.png', 'val/000002.png']:
        assert filecmp.cmp(demo / rel, tmp_path / rel, shallow=False), rel


def test_other_seed_gives_other_data(demo, tmp_path):
    generate(tmp_path, '--seed', '1')
    assert not filecmp.cmp(demo / 'train/000000.png', tmp_path / 'train/000000.png', shallow=False)


@pytest.mark.parametrize('split, num', [('train', 6), ('val', 3)])
def test_annotations_match_masks_and_images(demo, split, num):
    import mmcv
    coco = COCO(str(demo / f'annotations/instances_{split}.json'))
    assert len(coco.getImgIds()) == num
    assert coco.getAnnIds(), 'no objects'
    for img_info in coco.loadImgs(coco.getImgIds()):
        img = mmcv.imread(str(demo / split / img_info['file_name']))
        assert img.shape == (img_info['height'], img_info['width'], 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_info['id']))
        assert 1 <= len(anns) <= 4
        owner = np.zeros(img.shape[:2], int)
        for ann in anns:
            mask = mask_utils.decode(mask_utils.frPyObjects(ann['segmentation'], *ann['segmentation']['size']))
            assert mask.shape == img.shape[:2]
            assert mask.sum() == ann['area'] >= 40
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            owner += mask
        assert owner.max() == 1, 'visible masks of one image overlap'


def test_bad_arguments_are_rejected(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, '--out', str(tmp_path), '--img-size', '16'],
                            capture_output=True, text=True)
    assert result.returncode != 0 and 'at least 48x48' in result.stderr


def test_demo_config_classes_follow_the_generated_categories(demo):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs/demo/mask_rcnn_dsnet_t_demo.py'))
    with open(demo / 'annotations/instances_val.json') as f:
        names = tuple(c['name'] for c in sorted(json.load(f)['categories'], key=lambda c: c['id']))
    assert tuple(cfg.train_dataloader.dataset.metainfo['classes']) == names
    assert cfg.model.roi_head.bbox_head.num_classes == len(names)
