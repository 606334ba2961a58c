"""Clear errors for corrupt or empty annotation files, before a dataset is built.

Without this, a truncated COCO JSON ends in ``JSONDecodeError: Expecting ',' delimiter: line 1
column 1410`` (no file named) and an annotation file without images in ``ValueError: need at least
one array to concatenate`` deep inside mmengine's dataset code.
"""
import json
import os.path as osp

from mmvit_hybrid.utils.data_check import dataset_cfgs

__all__ = ['check_annotation_files']

MAX_PARSE_BYTES = 256 * 1024**2  # bigger JSON files are only checked for truncation


def _check_json(key, path, dataset, max_parse_bytes):
    fix = (f'The file is corrupt or truncated: regenerate or re-download it, or point '
           f'{key}.ann_file at another file.')
    if osp.getsize(path) > max_parse_bytes:  # too big to parse twice: check that it is complete
        with open(path, 'rb') as f:
            f.seek(max(0, osp.getsize(path) - 64))
            tail = f.read().rstrip()
        if not tail.endswith((b'}', b']')):
            raise ValueError(f'{key}.ann_file = {path!r} does not end like a JSON document. {fix}')
        return
    try:
        with open(path, 'rb') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f'{key}.ann_file = {path!r} is not valid JSON ({err}). {fix}') from None
    if not isinstance(data, dict):
        return
    images = data.get('images', data.get('data_list'))  # COCO / mmengine's format
    if images is not None and len(images) == 0:
        raise ValueError(f'{key}.ann_file = {path!r} lists no images: nothing to train or test on. '
                         f'Check that the file was written completely, or point {key}.ann_file at '
                         'another file.')
    filter_cfg = dataset.get('filter_cfg') or {}
    if ('images' in data and filter_cfg.get('filter_empty_gt')
            and not data.get('annotations') and not dataset.get('test_mode', False)):
        raise ValueError(
            f'{key}.ann_file = {path!r} has {len(data["images"])} images but no annotations, and '
            f'{key}.filter_cfg.filter_empty_gt=True drops images without annotations, so nothing '
            f'is left. Check the annotation file, or set {key}.filter_cfg.filter_empty_gt=False.')


def check_annotation_files(cfg, loaders=('train_dataloader', 'val_dataloader', 'test_dataloader'),
                           max_parse_bytes: int = MAX_PARSE_BYTES) -> None:
    """Raise ``ValueError`` naming the config key and the file if an annotation file is unusable.

    JSON files (COCO, mmengine's ``data_list`` format) must parse and list at least one image (and,
    with ``filter_cfg.filter_empty_gt``, at least one annotation); files above
    ``max_parse_bytes`` are only checked for truncation. Text lists (mmpretrain/mmseg ``.txt``)
    must have at least one non-empty line. Missing files are left to
    :func:`mmvit_hybrid.utils.check_dataset_paths`.

    Args:
        cfg (Config): the run's config.
        loaders (Sequence[str]): the dataloader keys to check.
        max_parse_bytes (int): JSON files larger than this are not parsed. Defaults to 256 MiB.
    """
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg:
            continue
        for key, dataset in dataset_cfgs(loader_cfg.get('dataset'), f'{loader}.dataset'):
            ann_file = dataset.get('ann_file') or ''
            if not ann_file or '://' in ann_file:
                continue
            path = ann_file if osp.isabs(ann_file) else osp.join(dataset.get('data_root') or '',
                                                                 ann_file)
            if not osp.isfile(path):
                continue
            if path.endswith('.json'):
                _check_json(key, path, dataset, max_parse_bytes)
            elif path.endswith('.txt'):
                with open(path, encoding='utf-8', errors='replace') as f:
                    if not any(line.strip() for line in f):
                        raise ValueError(f'{key}.ann_file = {path!r} is empty: it lists no images. '
                                         f'Point {key}.ann_file at another file.')
