"""Exact resume after SIGKILL, and crash-safe checkpoints.

A demo training (3 epochs x 3 iterations, deterministic mode, with random flips, stochastic depth and
RoI sampling left on) is run once uninterrupted, and once killed with SIGKILL in the middle of
epoch 2 and then resumed with ``--resume``. The resumed run must end with bit-identical weights and
log the same losses as the uninterrupted one: :class:`RNGStateHook` restores the random generators'
states that mmengine 0.10.7 does not save. The negative control resumes the same checkpoint with
every reliability hook but RNGStateHook, and must diverge (so the run has random draws that matter).

The atomic-save tests kill a process *inside* a checkpoint write (deterministically, by making the
write itself send SIGKILL halfway) and check what a user finds on disk.
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap
from glob import glob

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

import mmvit_hybrid  # noqa: F401  (registers the weights-only checkpoint loader)
from warm_tools import ONE_THREAD, ToolRun, run_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs/demo/mask_rcnn_dsnet_t_demo.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
NUM_TRAIN, BATCH, EPOCHS = 6, 2, 3  # 3 iterations per epoch, 9 in all


def train_cmd(data_root, work_dir, *extra, config=CONFIG, **more_opts):
    ann = osp.join(data_root, 'annotations/instances_val.json')
    opts = {}
    for loader in LOADERS:
        opts.update({f'{loader}.dataset.data_root': data_root + '/', f'{loader}.num_workers': 0,
                     f'{loader}.persistent_workers': False, f'{loader}.batch_size': BATCH})
    opts.update({'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann,
                 'default_hooks.logger.interval': 1, 'default_hooks.checkpoint.interval': 1,
                 'train_cfg.max_epochs': EPOCHS, 'train_cfg.val_begin': EPOCHS + 1,
                 'randomness.seed': 0, 'randomness.deterministic': True, **more_opts})
    return ['tools/train.py', config, '--work-dir', work_dir,
            *extra, '--cfg-options', *[f'{k}={v}' for k, v in opts.items()]]


def run(cmd):
    """Run the tool (forked from the warm interpreter, tests/warm_tools.py); its output."""
    code, out = run_tool(*cmd, env=ONE_THREAD)
    assert code == 0, out[-4000:]
    return out


def run_and_kill(cmd, marker):
    """Start ``cmd``; SIGKILL it as soon as ``marker`` appears in its output. Returns the output."""
    tool_run = ToolRun(*cmd, env=ONE_THREAD)
    out = tool_run.kill_when(marker)
    assert tool_run.process.exitcode == -signal.SIGKILL, f'not killed:\n{out[-3000:]}'
    return out


def logged_losses(work_dir):
    """``{iteration: loss}`` from every run's vis_data/scalars.json under ``work_dir``."""
    losses = {}
    for path in sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    losses[rec['iter']] = {k: v for k, v in rec.items() if k.startswith('loss')}
    return losses


def weights(path):
    return _load_checkpoint(path, map_location='cpu')['state_dict']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume')
    data_root = str(tmp / 'data')
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/misc/make_demo_coco.py'), '--out',
                    data_root, '--num-train', str(NUM_TRAIN), '--num-val', '2', '--img-size', '64'],
                   check=True, capture_output=True)
    ref_dir, kill_dir = str(tmp / 'uninterrupted'), str(tmp / 'killed')
    # the reference keeps every checkpoint; the killed run keeps the demo config's max_keep_ckpts=1
    run(train_cmd(data_root, ref_dir, **{'default_hooks.checkpoint.max_keep_ckpts': -1}))
    killed_log = run_and_kill(train_cmd(data_root, kill_dir), 'Epoch(train) [2][1/3]')
    with open(osp.join(kill_dir, 'last_checkpoint')) as f:
        last = f.read()
    # what a user finds after the kill (the resumed run's max_keep_ckpts=1 removes it later)
    after_kill = dict(files=sorted(os.listdir(kill_dir)), last=last,
                      ckpt=_load_checkpoint(last, map_location='cpu'))
    resumed_log = run(train_cmd(data_root, kill_dir, '--resume'))
    # negative control: the same resume (from the uninterrupted run's epoch 1, equal to the killed
    # run's) without RNGStateHook; tools/train.py adds no hook to a config with reliability_hooks=False
    no_rng_config = tmp / 'no_rng_state_hook.py'
    no_rng_config.write_text(NO_RNG_CONFIG.format(base=CONFIG))
    no_rng_dir = str(tmp / 'resumed_without_rng_state')
    no_rng_log = run(train_cmd(data_root, no_rng_dir, '--resume', osp.join(ref_dir, 'epoch_1.pth'),
                               config=str(no_rng_config)))
    return dict(data_root=data_root, ref_dir=ref_dir, kill_dir=kill_dir, killed_log=killed_log,
                after_kill=after_kill, resumed_log=resumed_log, no_rng_dir=no_rng_dir, no_rng_log=no_rng_log)


NO_RNG_CONFIG = '''
_base_ = [{base!r}]
reliability_hooks = False
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [dict(type='InvalidLossHook'), dict(type='CheckpointMatchHook'), dict(type='InputCheckHook')]
'''


def test_killed_mid_epoch_keeps_a_loadable_checkpoint(runs):
    assert 'Epoch(train) [2][1/3]' in runs['killed_log']
    assert 'epoch_2.pth' not in runs['after_kill']['files']  # killed before epoch 2 ended
    last = runs['after_kill']['last']
    assert last == osp.join(runs['kill_dir'], 'epoch_1.pth')
    assert not [f for f in runs['after_kill']['files'] if f.endswith('.tmp')]
    ckpt = runs['after_kill']['ckpt']  # loaded right after the kill
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 3
    assert len(ckpt['rng_states']) == 1  # RNGStateHook's entry, one per rank
    # the weights of epoch 1 equal the uninterrupted run's
    ref = weights(osp.join(runs['ref_dir'], 'epoch_1.pth'))
    for k in ref:
        torch.testing.assert_close(ckpt['state_dict'][k], ref[k], rtol=0, atol=0)


def test_resume_continues_from_the_checkpoint(runs):
    log = runs['resumed_log']
    assert f'Auto resumed from the latest checkpoint {osp.join(runs["kill_dir"], "epoch_1.pth")}' in log
    assert 'resumed epoch: 1, iter: 3' in log
    assert 'Epoch(train) [1]' not in log and 'Epoch(train) [3][3/3]' in log


def test_resumed_weights_equal_uninterrupted(runs):
    ref = weights(osp.join(runs['ref_dir'], f'epoch_{EPOCHS}.pth'))
    resumed = weights(osp.join(runs['kill_dir'], f'epoch_{EPOCHS}.pth'))
    assert ref.keys() == resumed.keys()
    for k in ref:
        torch.testing.assert_close(resumed[k], ref[k], rtol=0, atol=0, msg=k)


def test_resumed_losses_equal_uninterrupted(runs):
    ref = logged_losses(runs['ref_dir'])
    got = logged_losses(runs['kill_dir'])  # the killed run's iterations 1-4, the resumed 4-9
    assert sorted(ref) == list(range(1, NUM_TRAIN // BATCH * EPOCHS + 1))
    assert set(got) == set(ref)
    for it in ref:
        assert got[it] == ref[it], f'iteration {it}'


def test_resume_without_rng_state_hook_diverges(runs):
    """The negative control: resumed at the same checkpoint, the hooks are the same but for
    RNGStateHook, and the losses after the resume and the final weights differ from the
    uninterrupted run's."""
    log = runs['no_rng_log']
    assert 'resumed epoch: 1, iter: 3' in log and 'Epoch(train) [3][3/3]' in log
    assert 'RNGStateHook' not in log and 'InvalidLossHook' in log
    ref, got = logged_losses(runs['ref_dir']), logged_losses(runs['no_rng_dir'])
    assert sorted(got) == list(range(4, 10))
    assert got[4] != ref[4]  # the first iteration after the resume already draws differently
    ref_w = weights(osp.join(runs['ref_dir'], f'epoch_{EPOCHS}.pth'))
    no_rng_w = weights(osp.join(runs['no_rng_dir'], f'epoch_{EPOCHS}.pth'))
    assert any(not torch.equal(no_rng_w[k], ref_w[k]) for k in ref_w if ref_w[k].is_floating_point())


SCRIPT = textwrap.dedent('''
    """Train a toy model for 3 epochs; the write of epoch_{kill_at}.pth is killed halfway."""
    import os, signal, sys
    import torch
    from torch import nn
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    import mmvit_hybrid  # noqa: F401
    from mmvit_hybrid.engine import fileio
    from mmengine.fileio import LocalBackend

    work_dir, hook, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def half_write_then_die(path, data, *args, **kwargs):
        if os.path.basename(path).startswith('epoch_%d' % kill_at) or \\
                os.path.basename(path).startswith('.epoch_%d' % kill_at):
            with open(path, 'wb') as f:
                f.write(data[:len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path, data, *args, **kwargs)

    if hook == 'AtomicCheckpointHook':
        original = fileio._write_file
        fileio._write_file = half_write_then_die
    else:  # mmengine's LocalBackend.put(self, obj, filepath)
        _put = LocalBackend.put
        original = lambda path, data: _put(LocalBackend(), data, path)
        LocalBackend.put = lambda self, obj, filepath: half_write_then_die(str(filepath), obj)

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)
        def forward(self, inputs, labels=None, mode='tensor'):
            return dict(loss=(self.fc(torch.stack(inputs)) ** 2).mean())

    data = [dict(inputs=torch.randn(2), labels=0) for _ in range(4)]
    Runner(model=Toy(), work_dir=work_dir,
           train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                                 batch_size=2, num_workers=0),
           optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
           train_cfg=dict(by_epoch=True, max_epochs=3),
           default_hooks=dict(checkpoint=dict(type=hook, interval=1, max_keep_ckpts=1))).train()
''')


def kill_inside_save(tmp_path, hook):
    script = tmp_path / 'toy_train.py'
    script.write_text(SCRIPT)
    work_dir = str(tmp_path / 'work')
    code, out = run_tool(str(script), work_dir, hook, '2', env=ONE_THREAD, timeout=120)
    assert code == -signal.SIGKILL, out[-3000:]
    return work_dir


def test_kill_during_save_keeps_previous_checkpoint(tmp_path):
    work_dir = kill_inside_save(tmp_path, 'AtomicCheckpointHook')
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read()
    assert last == osp.join(work_dir, 'epoch_1.pth')
    assert _load_checkpoint(last)['meta']['epoch'] == 1  # complete and loadable
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))  # no truncated file under the name
    # and --resume picks it up
    from mmengine.runner import find_latest_checkpoint
    assert find_latest_checkpoint(work_dir) == last


def test_plain_mmengine_hook_loses_the_checkpoint(tmp_path):
    """The same kill with mmengine's CheckpointHook: what AtomicCheckpointHook prevents."""
    work_dir = kill_inside_save(tmp_path, 'CheckpointHook')
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read()
    assert not osp.exists(last)  # max_keep_ckpts=1 removed epoch_1.pth before saving epoch 2
    with pytest.raises(Exception):
        _load_checkpoint(osp.join(work_dir, 'epoch_2.pth'))  # truncated


def test_tools_enable_the_reliability_hooks():
    """tools/train.py's setup: what the runs above rely on, and the opt-out."""
    from mmengine.config import Config

    from mmvit_hybrid.engine import enable_reliability_hooks
    cfg = Config.fromfile(CONFIG)
    own = [h['type'] for h in cfg.get('custom_hooks', [])]  # the config's own (PretrainedCheckHook) stay first
    enable_reliability_hooks(cfg)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 1  # arguments kept
    assert [h['type'] for h in cfg.custom_hooks] == own + [
        'RNGStateHook', 'InvalidLossHook', 'CheckpointMatchHook', 'InputCheckHook']
    enable_reliability_hooks(cfg)  # idempotent
    assert len(cfg.custom_hooks) == len(own) + 4
    test_cfg = Config.fromfile(CONFIG)
    enable_reliability_hooks(test_cfg, training=False)
    assert test_cfg.default_hooks.checkpoint.type == 'CheckpointHook'
    assert [h['type'] for h in test_cfg.custom_hooks] == own + ['CheckpointMatchHook', 'InputCheckHook']
    off = Config.fromfile(CONFIG)
    off.reliability_hooks = False
    enable_reliability_hooks(off)
    assert off.default_hooks.checkpoint.type == 'CheckpointHook'
    assert [h['type'] for h in off.get('custom_hooks', [])] == own
