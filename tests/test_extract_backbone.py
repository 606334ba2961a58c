"""tools/model_converters/extract_backbone.py: a runner checkpoint of this package's DMFormer
ImageNet config -> the backbone-only file its det/seg configs load.

Train-free: the classifier of ``configs/dmformer/dmformer_s_in1k.py`` is built with random weights
(BatchNorm statistics drawn too) and saved as MMEngine's runner saves it: ``meta`` with numpy
values, ``state_dict``, ``optimizer`` and a ``message_hub`` holding ``HistoryBuffer`` objects,
which plain ``torch.load(weights_only=True)`` refuses (the mmengine 0.10.7 / torch >= 2.6 trap).
"""
import runpy
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from converter_cli import TOOLS, converter_error, run_converter

ROOT = Path(__file__).resolve().parents[1]
run_tool = partial(run_converter, 'extract_backbone')

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    """``(classifier, path)``: DMFormer-S classifier, random weights, saved runner-style."""
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmpretrain.registry import MODELS
    import mmvit_hybrid  # noqa: F401
    cfg = Config.fromfile(str(ROOT / 'configs/dmformer/dmformer_s_in1k.py'))
    torch.manual_seed(3)
    classifier = MODELS.build(cfg.model)
    classifier.init_weights()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # BN statistics and layer scales away from their init values
        for name, tensor in classifier.state_dict().items():
            if name.endswith(('running_mean', '.gamma1', '.gamma2')):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=gen))
            elif name.endswith('running_var'):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
    classifier.eval()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=1e-3)
    hub = MessageHub.get_instance('test_extract_backbone')
    hub.update_scalar('train/loss', 2.5)
    path = tmp_path_factory.mktemp('runner') / 'epoch_300.pth'
    torch.save(dict(meta=dict(epoch=300, iter=375300, seed=np.int64(1234), cfg=cfg.pretty_text,
                              mmengine_version='0.10.7', experiment_name='dmformer_s_in1k'),
                    state_dict=classifier.state_dict(), optimizer=optimizer.state_dict(),
                    message_hub=hub.state_dict(), param_schedulers=[]), path)
    return classifier, path


def test_runner_checkpoint_is_the_weights_only_trap(runner_checkpoint):
    import pickle
    with pytest.raises(pickle.UnpicklingError):
        torch.load(runner_checkpoint[1], weights_only=True)


def test_extracted_backbone_loads_into_the_dense_backbone(runner_checkpoint, tmp_path):
    """The det/seg init_cfg (Pretrained, prefix='backbone.') loads the file strictly into a fresh
    DMFormer with the dense out_indices; its stage-4 output equals the classifier backbone's."""
    from mmvit_hybrid.models import DMFormer
    classifier, src = runner_checkpoint
    dst = tmp_path / 'checkpoints' / 'dmformer_s_in1k_backbone.pth'
    out = run_tool(src, dst)
    expected = {k: v for k, v in classifier.state_dict().items() if k.startswith('backbone.')}
    assert f'{len(expected)} backbone.* tensors' in out and 'head' in out
    saved = torch.load(dst, weights_only=True)  # plain tensors and python values only
    assert saved['state_dict'].keys() == expected.keys()
    assert all(torch.equal(saved['state_dict'][k], v) for k, v in expected.items())
    assert saved['meta']['epoch'] == 300 and saved['meta']['extracted_from'] == str(src)
    backbone = DMFormer(arch='s', out_indices=(0, 1, 2, 3),
                        init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, reference = backbone(x)[3], classifier.backbone(x)[0]
    assert reference.abs().max() > 0.1
    assert torch.equal(ours, reference)


def test_extracted_backbone_loads_into_the_mask_rcnn_config(runner_checkpoint, tmp_path):
    """The config's own init_cfg, pointed at the extracted file: every backbone tensor arrives."""
    from mmengine.config import Config
    from mmdet.registry import MODELS
    classifier, src = runner_checkpoint
    dst = tmp_path / 'dmformer_s_in1k_backbone.pth'
    run_tool(src, dst)
    cfg = Config.fromfile(str(ROOT / 'configs/dmformer/mask_rcnn_dmformer_s_coco.py'))
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    cfg.model.backbone.init_cfg.checkpoint = str(dst)
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    state = detector.backbone.state_dict()
    reference = classifier.state_dict()
    assert len(state) == sum(k.startswith('backbone.') for k in reference)
    assert all(torch.equal(v, reference[f'backbone.{k}']) for k, v in state.items())


def test_ddp_prefix_and_errors(runner_checkpoint, tmp_path):
    """A ``module.`` prefix is removed; a file without backbone tensors ends with one line and
    writes nothing."""
    tool = runpy.run_path(str(TOOLS / 'extract_backbone.py'), run_name='extract_backbone')
    classifier, _ = runner_checkpoint
    ddp = {f'module.{k}': v for k, v in classifier.state_dict().items()}
    backbone, dropped = tool['extract_backbone']({'state_dict': ddp})
    assert list(backbone) == [k for k in classifier.state_dict() if k.startswith('backbone.')]
    assert dropped and all(k.startswith('head.') for k in dropped)
    src = tmp_path / 'head_only.pth'
    torch.save({'state_dict': {'head.fc.weight': torch.zeros(2, 2)}}, src)
    message = converter_error('extract_backbone', src, tmp_path / 'out.pth')
    assert message.startswith("extract_backbone: error: no 'backbone.' tensors"), message
    assert not (tmp_path / 'out.pth').exists()
