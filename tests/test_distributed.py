"""Data-parallel training on CPU through tools/dist_train.sh (torchrun + MMEngine's DDP wrapper, gloo).

One 2-process run (2 processes x batch 1, 2 iterations) on the tiny demo data is compared with a
1-process run (1 process x batch 2) on the same images: both ranks must hold bit-identical
parameters after every step (:class:`ReplicaSyncHook` dumps each rank's weights), and the
first-iteration losses must agree. tools/dist_test.sh then evaluates the checkpoint with 2 processes.

Randomness that legitimately differs between "2 ranks with the same seed" and "1 process drawing
twice" is switched off for the comparison (flip augmentation, stochastic depth, attention dropout),
and BN uses its running statistics (``norm_eval``): with batch statistics, BN normalises over 1
image per rank versus 2 images in one process, which is the difference SyncBN exists to remove.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from warm_tools import ONE_THREAD, run_tool

from mmvit_hybrid.engine import ReplicaSyncHook, init_cpu_distributed
from mmvit_hybrid.engine.hooks import replica_sync_hook

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs/demo/mask_rcnn_dsnet_t_demo.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# losses normalised per image (fixed sample counts per image): the mean over ranks equals the
# loss of the pooled batch. loss_mask is a mean over the positive RoIs of the whole batch, i.e.
# weighted by each image's positive count, so it is not compared.
PER_IMAGE_LOSSES = ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def env():
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHON=sys.executable,
                PORT=str(free_port()))


def run(cmd, timeout=300):
    proc = subprocess.run(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def cfg_options(data_root, **extra):
    ann = osp.join(data_root, 'annotations/instances_val.json')
    opts = {}
    for loader in LOADERS:
        opts.update({f'{loader}.dataset.data_root': data_root + '/', f'{loader}.num_workers': 0,
                     f'{loader}.persistent_workers': False, f'{loader}.batch_size': 1})
    opts.update({
        'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann,
        'default_hooks.logger.interval': 1, 'train_cfg.max_epochs': 1, 'train_cfg.val_begin': 2,
        'randomness.seed': 0, 'randomness.deterministic': True,
        'train_dataloader.dataset.pipeline.3.prob': 0.,  # RandomFlip off
        'model.backbone.drop_path_rate': 0., 'model.backbone.attn_drop_rate': 0.,
        'model.backbone.norm_eval': True})
    opts.update(extra)
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def sync_config(tmp, dump_dir):
    """The demo config plus a ReplicaSyncHook dumping every rank's weights to ``dump_dir``."""
    path = tmp / 'sync_cfg.py'
    path.write_text(f'_base_ = {CONFIG!r}\n'
                    f'custom_hooks = [dict(type="ReplicaSyncHook", dump_dir={str(dump_dir)!r})]\n')
    return str(path)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('ddp')
    data_root = str(tmp / 'data')
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/misc/make_demo_coco.py'), '--out',
                    data_root, '--num-train', '4', '--num-val', '2', '--img-size', '64'],
                   check=True, capture_output=True)
    # 2 processes x batch 1, 2 iterations
    ddp_dir = tmp / 'ddp'
    ddp_log = run(['bash', osp.join(ROOT, 'tools/dist_train.sh'), sync_config(tmp, ddp_dir / 'dump'),
                   '2', '--work-dir', str(ddp_dir), *cfg_options(data_root)])
    # 1 process x batch 2 on the first 2 images of the same shuffled order, 1 iteration
    single_dir = tmp / 'single'
    # (forked from the warm interpreter, tests/warm_tools.py: torchrun above is the path under test)
    code, single_log = run_tool('tools/train.py', sync_config(tmp, single_dir / 'dump'), '--work-dir',
                                str(single_dir), *cfg_options(data_root, **{
                                    'train_dataloader.batch_size': 2, 'train_dataloader.dataset.indices': 2}),
                                env=ONE_THREAD)
    assert code == 0, single_log[-4000:]
    return dict(data_root=data_root, ddp_dir=ddp_dir, ddp_log=ddp_log, single_dir=single_dir,
                single_log=single_log)


def load_dump(work_dir, rank, it):
    return torch.load(osp.join(work_dir, 'dump', f'rank{rank}_iter{it}.pth'))


def test_ddp_runs_with_mmengine_wrapper(runs):
    log = runs['ddp_log']
    assert 'Distributed training: True' in log
    assert "type='MMDistributedDataParallel'" in log
    assert 'Epoch(train) [1][2/2]' in log  # 4 images / (2 ranks x batch 1)
    assert osp.isfile(osp.join(runs['ddp_dir'], 'epoch_1.pth'))
    assert load_dump(runs['ddp_dir'], 1, 1)['world_size'] == 2


@pytest.mark.parametrize('it', [1, 2])
def test_ranks_hold_identical_weights_after_each_step(runs, it):
    rank0, rank1 = (load_dump(runs['ddp_dir'], r, it) for r in (0, 1))
    # the ranks trained on different images ...
    assert rank0['outputs']['loss'] != rank1['outputs']['loss']
    # ... and still hold the same parameters, bit for bit
    params = [k for k in rank0['state_dict'] if 'running_' not in k and 'num_batches' not in k]
    assert len(params) > 100
    for k in params:
        torch.testing.assert_close(rank0['state_dict'][k], rank1['state_dict'][k], rtol=0, atol=0,
                                   msg=f'{k} differs between ranks after iteration {it}')


def test_weights_change_between_steps(runs):
    """Guards the test above: identical weights must come from synchronised updates."""
    before, after = (load_dump(runs['ddp_dir'], 0, it)['state_dict'] for it in (1, 2))
    changed = [k for k in before if before[k].is_floating_point()
               and not torch.equal(before[k], after[k])]
    assert len(changed) > 100


def test_2x1_matches_1x2_first_iteration_loss(runs):
    ranks = [load_dump(runs['ddp_dir'], r, 1)['outputs'] for r in (0, 1)]
    single = load_dump(runs['single_dir'], 0, 1)['outputs']
    assert load_dump(runs['single_dir'], 0, 1)['world_size'] == 1
    for name in PER_IMAGE_LOSSES:
        ddp_mean = (ranks[0][name] + ranks[1][name]) / 2  # DDP averages the ranks' gradients
        assert ddp_mean == pytest.approx(single[name], rel=0.02, abs=1e-4), name
    # the two ranks saw different images, so the agreement above is not trivial
    assert ranks[0]['loss_rpn_bbox'] != pytest.approx(ranks[1]['loss_rpn_bbox'], rel=0.1)


def test_dist_test_evaluates_with_two_processes(runs, tmp_path):
    ckpt = osp.join(runs['ddp_dir'], 'epoch_1.pth')
    log = run(['bash', osp.join(ROOT, 'tools/dist_test.sh'), CONFIG, ckpt, '2', '--work-dir',
               str(tmp_path), *cfg_options(runs['data_root'])])
    assert 'Distributed training: True' in log
    assert 'coco/bbox_mAP:' in log


def _cpu_ddp_cfg(monkeypatch, **model):
    for k, v in dict(RANK='0', WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT='1').items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    return Config(dict(launcher='pytorch', model=dict(backbone=dict(type='DSNet', **model))))


def test_syncbn_under_cpu_ddp_is_a_clear_error(monkeypatch):
    cfg = _cpu_ddp_cfg(monkeypatch, norm_cfg=dict(type='SyncBN'))
    with pytest.raises(RuntimeError, match='SyncBN') as info:
        init_cpu_distributed(cfg)
    assert '--cfg-options model.backbone.norm_cfg.type=BN' in str(info.value)
    assert not torch.distributed.is_initialized()


def test_missing_torchrun_env_is_a_clear_error(monkeypatch):
    cfg = _cpu_ddp_cfg(monkeypatch)
    monkeypatch.delenv('MASTER_PORT')
    with pytest.raises(RuntimeError, match='MASTER_PORT.*tools/dist_train.sh'):
        init_cpu_distributed(cfg)


def test_slurm_launcher_without_cuda_is_a_clear_error(monkeypatch):
    cfg = _cpu_ddp_cfg(monkeypatch)
    cfg.launcher = 'slurm'
    with pytest.raises(RuntimeError, match='--launcher slurm without CUDA'):
        init_cpu_distributed(cfg)


def test_replica_sync_hook_reports_diverged_tensor(monkeypatch):
    """The check itself can fail: a gathered fingerprint that differs is named."""
    model = torch.nn.Linear(2, 2)

    class FakeRunner:
        iter = 4
        epoch = 0

    FakeRunner.model = model

    def gather(obj):
        other = dict(obj)
        other['bias'] = (0.0, 0.0, 0.0)
        return [obj, other]

    monkeypatch.setattr(replica_sync_hook, 'get_dist_info', lambda: (0, 2))
    monkeypatch.setattr(replica_sync_hook, 'all_gather_object', gather)
    with pytest.raises(RuntimeError, match='iteration 5: bias differs between rank 0 and rank 1'):
        ReplicaSyncHook().after_train_iter(FakeRunner(), 4)
    monkeypatch.setattr(replica_sync_hook, 'all_gather_object', lambda obj: [obj, dict(obj)])
    ReplicaSyncHook().after_train_iter(FakeRunner(), 4)  # identical: no error


def test_fsdp_example_config_names_flexible_runner():
    """The FSDP example only loads here: FSDP needs CUDA GPUs (its model build and forward are
    covered by tests/test_configs.py, which builds every config)."""
    from mmengine.registry import RUNNERS, STRATEGIES
    cfg = Config.fromfile(osp.join(ROOT, 'configs/examples/dsnet_b_in1k_fsdp.py'))
    assert cfg.runner_type == 'FlexibleRunner' and RUNNERS.get(cfg.runner_type) is not None
    assert cfg.strategy.type == 'FSDPStrategy' and STRATEGIES.get('FSDPStrategy') is not None
    policy = cfg.strategy.model_wrapper.auto_wrap_policy
    assert policy.type == 'torch.distributed.fsdp.wrap.size_based_auto_wrap_policy'
    assert cfg.model.backbone.type == 'DSNet' and cfg.model.backbone.arch == 'base'
