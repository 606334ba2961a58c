"""Train a model from an mmdet, mmseg or mmpretrain config with MMEngine's runner.

The config's ``default_scope`` picks the library; this script imports none of them. Modelled on
mmdet 3.3.0's ``tools/train.py``.

Example::

    python tools/train.py configs/dsnet/mask_rcnn_dsnet_t_coco.py --amp
    python tools/train.py CONFIG --resume              # from the latest checkpoint in the work dir
    python tools/train.py CONFIG --resume PATH.pth     # from a given checkpoint
    bash tools/dist_train.sh CONFIG 2                  # 2 processes (torchrun; gloo on CPU)

Checkpoints are written atomically, carry the RNG states (exact resume) and training stops with a
clear error on a NaN/inf loss: see :func:`mmvit_hybrid.engine.enable_reliability_hooks` and
docs/robustness.md.
"""
import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# importing the package registers the modules and the torch>=2.6 checkpoint loader
from mmvit_hybrid.engine import (check_amp_available, check_annotation_files, check_pretrained_files,
                                 enable_reliability_hooks, init_cpu_distributed)
from mmvit_hybrid.utils import check_dataset_paths


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate by the actual batch size (needs `auto_scale_lr` in the '
        'config)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, from the latest checkpoint in the '
        'work dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs such as `train_cfg.max_epochs=2` or '
        '`optim_wrapper.optimizer.lr=0.01`; lists as key="[a,b]", no spaces inside quotes')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    # torch.distributed.launch passes `--local-rank` (torch >= 2.0) or `--local_rank`; torchrun sets
    # LOCAL_RANK itself.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config} does not exist')
    if (args.resume not in (None, 'auto') and '://' not in args.resume
            and not osp.isfile(args.resume)):
        parser.error(f'--resume checkpoint {args.resume} does not exist')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


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

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.', logger='current',
                      level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type is `OptimWrapper`, '
                f'but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError(
                '`--auto-scale-lr` needs `auto_scale_lr = dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True

    # bare `--resume`: with load_from=None the runner resumes from the latest checkpoint in work_dir
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    check_amp_available(cfg)
    # a missing Pretrained checkpoint: one line naming the file and the command that makes it, before
    # the datasets are built; PretrainedCheckHook checks the built model again and logs a warning
    # when the backbone trains from scratch
    check_pretrained_files(cfg)
    custom_hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(isinstance(h, dict) and h.get('type') == 'PretrainedCheckHook' for h in custom_hooks):
        cfg.custom_hooks = custom_hooks + [dict(type='PretrainedCheckHook')]
    check_dataset_paths(cfg, ('train_dataloader', 'val_dataloader'))
    # corrupt, truncated or empty annotation files: a clear error before the datasets are built
    check_annotation_files(cfg, ('train_dataloader', 'val_dataloader'))
    # atomic checkpoints, RNG states in checkpoints (exact --resume), stop on NaN/inf losses
    enable_reliability_hooks(cfg)
    # torchrun without CUDA: gloo process group + CPU DDP (mmengine's init_dist needs CUDA)
    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
