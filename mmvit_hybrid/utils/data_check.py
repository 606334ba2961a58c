"""Fail early, with the fix in the message, when a config points at data that is not there."""
import os.path as osp

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
_OVERRIDE_HINT = ('Point the config at your data, e.g. --cfg-options {key}.data_root=DIR/ '
                  '(likewise for the other dataloaders, and val_evaluator.ann_file / '
                  'test_evaluator.ann_file for COCO-style evaluators).')


def dataset_cfgs(cfg, key):
    """Yield ``(dotted key, dataset cfg)`` for a dataset and the datasets it wraps
    (``RepeatDataset.dataset``, ``ConcatDataset.datasets``)."""
    if not isinstance(cfg, dict):
        return
    yield key, cfg
    if isinstance(cfg.get('dataset'), dict):
        yield from dataset_cfgs(cfg['dataset'], f'{key}.dataset')
    for i, inner in enumerate(cfg.get('datasets', None) or []):
        yield from dataset_cfgs(inner, f'{key}.datasets.{i}')


def check_dataset_paths(cfg, loaders=LOADERS) -> None:
    """Raise ``FileNotFoundError`` naming the config key, the path and the fix if a dataloader's
    ``data_root`` or ``ann_file`` (or an evaluator's ``ann_file``) does not exist."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg:
            continue
        for key, dataset in dataset_cfgs(loader_cfg.get('dataset'), f'{loader}.dataset'):
            data_root = dataset.get('data_root') or ''
            if data_root and '://' not in data_root and not osp.isdir(data_root):
                raise FileNotFoundError(f'{key}.data_root = {data_root!r} is not a folder. '
                                        + _OVERRIDE_HINT.format(key=key))
            ann_file = dataset.get('ann_file') or ''
            if ann_file and '://' not in ann_file:
                path = ann_file if osp.isabs(ann_file) else osp.join(data_root, ann_file)
                if not osp.exists(path):
                    raise FileNotFoundError(f'{key}.ann_file resolves to {path!r}, which does not exist. '
                                            + _OVERRIDE_HINT.format(key=key))
        evaluator = cfg.get(loader.replace('dataloader', 'evaluator'))
        for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
            ann_file = metric.get('ann_file') if isinstance(metric, dict) else None
            if ann_file and '://' not in ann_file and not osp.isfile(ann_file):
                name = loader.replace('dataloader', 'evaluator')
                raise FileNotFoundError(f'{name}.ann_file = {ann_file!r} does not exist; set it with '
                                        f'--cfg-options {name}.ann_file=PATH')
