"""Runner checkpoints load on torch >= 2.6 through mmvit_hybrid's weights-only loader."""
import argparse
import itertools
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import CheckpointLoader, Runner, load_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint, load_from_http
from torch.utils.data import Dataset

from mmvit_hybrid.utils import register_checkpoint_loader
from mmvit_hybrid.utils.checkpoint import UNSAFE_LOAD_ENV, load_from_local


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, inputs, labels, mode='tensor'):
        out = self.bn(self.linear(torch.stack(inputs)))
        if mode == 'loss':
            return dict(loss=((out.squeeze(1) - torch.stack(labels))**2).mean())
        return [dict(pred=p, label=t) for p, t in zip(out.squeeze(1), labels)]


class ToyDataset(Dataset):
    metainfo = dict(classes=('a', 'b'), palette=[(0, 0, 0), (255, 0, 0)])

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.data = torch.randn(12, 2, generator=gen)
        self.label = self.data.sum(1)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return dict(inputs=self.data[index], labels=self.label[index])


class ToyMetric(BaseMetric):
    """Returns numpy scalars, as mmseg's IoUMetric does."""

    def process(self, data_batch, data_samples):
        self.results += [float((s['pred'] - s['label'])**2) for s in data_samples]

    def compute_metrics(self, results):
        return dict(mse=np.float64(np.mean(results)), neg_mse=np.float32(-np.mean(results)))


_run_ids = itertools.count()


def toy_cfg(work_dir, max_epochs=2):
    loader = dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=True),
                  batch_size=3, num_workers=0)
    return dict(
        model=ToyModel(), work_dir=work_dir, train_dataloader=loader, val_dataloader=loader,
        val_evaluator=[ToyMetric()],
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=3),
                         dict(type='MultiStepLR', milestones=[1], by_epoch=True)],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        val_cfg=dict(),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=1, save_best='mse', rule='less')),
        randomness=dict(seed=0),
        experiment_name=f'toy_{next(_run_ids)}')  # runners must not share a MessageHub


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Work dir of a toy runner trained for 2 epochs with validation, and its last checkpoint."""
    work_dir = str(tmp_path_factory.mktemp('toy_run'))
    Runner(**toy_cfg(work_dir)).train()
    return dict(work_dir=work_dir, ckpt=osp.join(work_dir, 'epoch_2.pth'))


def assert_equal_nested(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_equal_nested(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_equal_nested(x, y)
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    elif hasattr(a, '__dict__'):
        assert_equal_nested(vars(a), vars(b))
    else:
        np.testing.assert_array_equal(a, b)


def test_loader_is_registered():
    register_checkpoint_loader()
    register_checkpoint_loader()
    assert CheckpointLoader._get_checkpoint_loader('work_dirs/x/epoch_1.pth') is load_from_local
    assert CheckpointLoader._get_checkpoint_loader('https://x/y.pth') is load_from_http


def test_trap_exists(trained):
    """Without the loader a runner checkpoint does not load (else the other tests prove nothing)."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(trained['ckpt'])


def test_same_content_as_unsafe_load(trained):
    register_checkpoint_loader()
    assert_equal_nested(torch.load(trained['ckpt'], weights_only=False),
                        _load_checkpoint(trained['ckpt']))


def test_resume_restores_state(trained, tmp_path):
    register_checkpoint_loader()
    expected = torch.load(trained['ckpt'], weights_only=False)
    runner = Runner(**toy_cfg(str(tmp_path)))
    runner.resume(trained['ckpt'])
    assert (runner.epoch, runner.iter) == (2, 8)
    assert_equal_nested(expected['state_dict'], runner.model.state_dict())
    # only the moments: building the schedulers on resume rescales the optimizer's lr (mmengine)
    assert_equal_nested(expected['optimizer']['state'], runner.optim_wrapper.state_dict()['state'])
    assert_equal_nested(expected['param_schedulers'],
                        [s.state_dict() for s in runner.param_schedulers])
    hub = runner.message_hub.state_dict()
    assert isinstance(hub['runtime_info']['best_score'], np.float64)
    assert isinstance(runner.message_hub.get_scalar('val/mse'), HistoryBuffer)
    assert_equal_nested(expected['message_hub'], hub)


def test_auto_resume_continues_training(trained, tmp_path):
    register_checkpoint_loader()
    work_dir = str(tmp_path / 'run')
    shutil.copytree(trained['work_dir'], work_dir)
    runner = Runner(**toy_cfg(work_dir, max_epochs=3), resume=True)
    runner.train()
    assert (runner.epoch, runner.iter) == (3, 12)
    assert osp.isfile(osp.join(work_dir, 'epoch_3.pth'))


def test_load_checkpoint_weights(trained):
    register_checkpoint_loader()
    model = ToyModel()
    ckpt = load_checkpoint(model, trained['ckpt'], map_location='cpu', strict=True)
    assert_equal_nested(ckpt['state_dict'], model.state_dict())
    assert not torch.equal(ToyModel().linear.weight, model.linear.weight)
    assert ckpt['meta']['dataset_meta']['classes'] == ('a', 'b')


def test_numpy1_checkpoint(tmp_path):
    """Files written under numpy 1.x name ``numpy.core.multiarray``; legacy (non-zip) format."""
    path = str(tmp_path / 'np1.pth')
    torch.save(dict(meta=dict(best=np.float64(0.5), hist=np.arange(3))), path,
               _use_new_zipfile_serialization=False)
    with open(path, 'rb') as f:
        data = f.read()
    assert b'numpy._core.multiarray' in data
    with open(path, 'wb') as f:
        f.write(data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray'))
    register_checkpoint_loader()
    meta = _load_checkpoint(path)['meta']
    assert meta['best'] == 0.5
    np.testing.assert_array_equal(meta['hist'], np.arange(3))


class GetattrGadget:
    """Pickles as ``getattr(HistoryBuffer, 'update')``, a lookup outside the allowed four."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, 'update')


def test_only_history_buffer_getattr_is_allowed(tmp_path):
    path = str(tmp_path / 'gadget.pth')
    torch.save(dict(x=GetattrGadget()), path)
    register_checkpoint_loader()
    with pytest.raises(pickle.UnpicklingError, match="getattr.*HistoryBuffer.*'update'"):
        _load_checkpoint(path)


@pytest.fixture
def untrusted_ckpt(tmp_path, monkeypatch):
    """A checkpoint holding an ``argparse.Namespace`` (as DeiT/timm training checkpoints do)."""
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    path = str(tmp_path / 'args.pth')
    torch.save(dict(state_dict=dict(w=torch.ones(2)), args=argparse.Namespace(lr=0.1)), path)
    register_checkpoint_loader()
    return path


def test_unknown_global_is_refused(untrusted_ckpt):
    with pytest.raises(pickle.UnpicklingError, match='argparse.Namespace') as info:
        _load_checkpoint(untrusted_ckpt)
    assert f'{UNSAFE_LOAD_ENV}=1' in str(info.value)


def test_unsafe_env_switch(untrusted_ckpt, monkeypatch):
    monkeypatch.setenv(UNSAFE_LOAD_ENV, '1')
    with pytest.warns(UserWarning, match='weights_only=False'):
        ckpt = _load_checkpoint(untrusted_ckpt)
    assert ckpt['args'].lr == 0.1
    torch.testing.assert_close(ckpt['state_dict']['w'], torch.ones(2))
