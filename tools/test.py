"""Evaluate a checkpoint on the test set of an mmdet, mmseg or mmpretrain config.

The config's ``default_scope`` picks the library; this script imports none of them. Modelled on
mmdet 3.3.0's ``tools/test.py``.

Example::

    python tools/test.py CONFIG work_dirs/x/epoch_12.pth --out preds.pkl --show-dir vis
"""
import argparse
import inspect
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import HOOKS, METRICS, RUNNERS
from mmengine.runner import Runner

# importing the package registers the modules and the torch>=2.6 checkpoint loader
from mmvit_hybrid.engine import (check_annotation_files, enable_reliability_hooks,
                                 init_cpu_distributed)
from mmvit_hybrid.utils import check_dataset_paths


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (local path or URL)')
    parser.add_argument(
        '--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out', help='dump the predictions to this pickle file (.pkl) for offline evaluation')
    parser.add_argument(
        '--show-dir', help='save painted predictions here (under work_dir/<timestamp>/ for mmdet, '
        'the visualizer save_dir for mmseg, as given for mmpretrain)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs such as `test_dataloader.batch_size=2`')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config} does not exist')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint} does not exist')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must be a .pkl or .pickle file, got {args.out}')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg, show_dir):
    """Turn on the configured visualization hook and point its output at ``show_dir``.

    The three libraries' hooks differ: mmdet's ``DetVisualizationHook`` takes ``draw`` and
    ``test_out_dir``, mmpretrain's ``VisualizationHook`` takes ``enable`` and ``out_dir``, and
    mmseg's ``SegVisualizationHook`` takes ``draw`` (and ``interval``, set to 1 so that every test
    image is painted) and writes through the visualizer's ``save_dir``.
    """
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise RuntimeError('--show-dir needs a visualization hook in `default_hooks`, e.g. '
                           "visualization=dict(type='DetVisualizationHook')")
    with HOOKS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
        hook_cls = registry.get(hook['type'])
    if hook_cls is None:
        raise KeyError(f"visualization hook {hook['type']} is not registered")
    params = inspect.signature(hook_cls).parameters
    if 'test_out_dir' in params:
        hook.update(draw=True, test_out_dir=show_dir)
    elif 'out_dir' in params:
        hook.update(enable=True, out_dir=show_dir)
    else:
        hook.draw = True
        if 'interval' in params:
            hook.interval = 1  # mmseg's hook draws every `interval`-th batch only (default 50)
        cfg.visualizer.save_dir = show_dir


def dump_metric(cfg, out_file):
    """The metric that dumps predictions to ``out_file``.

    mmdet's ``DumpDetResults`` (masks stored as RLE, as mmdet's test.py does) where the config's
    scope has it, else mmengine's ``DumpResults``.
    """
    with METRICS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
        dump_cls = registry.get('DumpDetResults') or DumpResults
    return dump_cls(out_file_path=out_file)


def main():
    args = parse_args()

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir priority: CLI > config > ./work_dirs/<config stem>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)

    check_dataset_paths(cfg, ('test_dataloader', ))
    # corrupt, truncated or empty annotation files: a clear error before the datasets are built
    check_annotation_files(cfg, ('test_dataloader', ))
    # refuse a checkpoint of another architecture with a clear message (CheckpointMatchHook)
    enable_reliability_hooks(cfg, training=False)
    # torchrun without CUDA: gloo process group + CPU DDP (mmengine's init_dist needs CUDA)
    init_cpu_distributed(cfg, training=False)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(dump_metric(cfg, args.out))
    runner.test()


if __name__ == '__main__':
    main()
