"""Pretrained by default: every detection, segmentation and fine-tune config starts its backbone
from the file a converter in tools/model_converters/ writes (or, for DMFormer, the backbone
extracted from this package's own ImageNet run); a missing file stops training at start-up with
one line naming the file and the command that makes it; ``model.backbone.init_cfg=None`` trains
from scratch with a logged warning; the CPU demos need no weight file."""
import importlib.util
import os.path as osp
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from warm_tools import run_tool

from mmvit_hybrid.engine.hooks.pretrained_check_hook import (MissingCheckpointError, check_pretrained_files,
                                                            pretrained_source)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)
DENSE = [p for p in CONFIGS if 'demo' not in p.parts and p.stem.endswith(('_coco', '_ade20k', '_cityscapes'))]
# the high-resolution fine-tunes of a 224 ImageNet model
FINETUNE = [p for p in CONFIGS if p.parent.name == 'volo' and p.stem.endswith(('_384_in1k', '_448_in1k', '_512_in1k'))]
DEMOS = [p for p in CONFIGS if 'demo' in p.parts]
SEG_DEMO = ROOT / 'configs/demo/upernet_dsnet_t_demo.py'
ADE_ARGS = ('--num-train', '4', '--num-val', '2', '--img-size', '64')

pytestmark = pytest.mark.usefixtures('cached_config_metafiles')


def rel(path):
    return str(Path(path).relative_to(ROOT))


def load_tool(path):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def written_file(command: str) -> str:
    """The file the command of :func:`pretrained_source` writes: the converter's DST (for DS-Net,
    the backbone-only file beside DST, by the converter's own naming function)."""
    args = shlex.split(command.split(', then ')[-1])
    script, dst = args[1], args[3]
    if script.endswith('dsnet_to_mmvit.py'):
        return load_tool('tools/model_converters/dsnet_to_mmvit.py').backbone_path(dst)
    return dst


def test_lists():
    assert len(DENSE) >= 35 and len(FINETUNE) == 6 and len(DEMOS) == 3


@pytest.mark.parametrize('path', DENSE + FINETUNE, ids=rel)
def test_config_loads_converted_weights_by_default(path):
    """The backbone (and a fine-tune's head) init_cfg is Pretrained, names the file the matching
    converter writes for this backbone and arch, with the prefix that file needs."""
    model = Config.fromfile(path).model
    backbone = model.backbone
    init = backbone.get('init_cfg')
    assert isinstance(init, dict) and init.get('type') == 'Pretrained', f'{rel(path)}: backbone init_cfg {init}'
    checkpoint = init['checkpoint']
    assert checkpoint.startswith('checkpoints/'), checkpoint
    source = pretrained_source(checkpoint)
    assert source is not None, f'{rel(path)}: no command known for {checkpoint}'
    assert source['backbone'] == backbone.type, (checkpoint, backbone.type)
    assert source['arch'] == str(backbone.get('arch')), f'{rel(path)}: {checkpoint} holds {source["arch"]}, ' \
        f'the config builds {backbone.get("arch")}'
    assert written_file(source['command']) == checkpoint, source['command']
    if backbone.type == 'BoTNet':
        # resnet_to_botnet.py writes the backbone's own keys, for the size it is told
        assert init.get('prefix') is None
        size = backbone.img_size if isinstance(backbone.img_size, (list, tuple)) else (backbone.img_size, ) * 2
        assert f'--img-size {size[0]} {size[1]}' in source['command'], (source['command'], size)
    else:
        # dsnet_to_mmvit.py's _backbone file, volo_to_mmvit.py's classifier and extract_backbone.py's
        # file keep the classifier's 'backbone.' keys
        assert init.get('prefix') == 'backbone.'
    if path in FINETUNE:
        head = model.head.init_cfg
        assert head == dict(type='Pretrained', checkpoint=checkpoint, prefix='head.'), head


@pytest.mark.parametrize('path', DEMOS, ids=rel)
def test_demos_need_no_weight_file(path):
    """`make demo` trains from random initialisation, offline: no Pretrained init anywhere."""
    cfg = Config.fromfile(path)
    check_pretrained_files(cfg)  # nothing to check
    assert "'Pretrained'" not in repr(cfg.model.to_dict()), rel(path)


def test_missing_file_message_is_one_line(tmp_path):
    cfg = Config.fromfile(ROOT / 'configs/dsnet/mask_rcnn_dsnet_s_coco.py')
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'checkpoints/dsnet_s_in1k_backbone.pth')
    with pytest.raises(MissingCheckpointError) as info:
        check_pretrained_files(cfg)
    message = str(info.value)
    assert '\n' not in message
    assert 'model.backbone.init_cfg.checkpoint' in message and 'dsnet_s_in1k_backbone.pth' in message
    assert (f'python tools/model_converters/dsnet_to_mmvit.py '
            'https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_small_pretrained.pdparams '
            f'{tmp_path}/checkpoints/dsnet_s_in1k.pth') in message
    # a file that is there passes
    path = Path(cfg.model.backbone.init_cfg.checkpoint)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'')
    check_pretrained_files(cfg)


@pytest.fixture(scope='module')
def ade(tmp_path_factory):
    out = tmp_path_factory.mktemp('ade')
    subprocess.run([sys.executable, str(ROOT / 'tools/misc/make_demo_ade.py'), '--out', str(out), *ADE_ARGS],
                   check=True, capture_output=True)
    return str(out) + '/'


def pretrained_demo(tmp_path, checkpoint):
    """The seg demo with the DS-Net-T ImageNet init of the det/seg configs pointed at ``checkpoint``."""
    path = tmp_path / 'pretrained_demo.py'
    path.write_text(f"_base_ = '{SEG_DEMO}'\n"
                    f"model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', "
                    f"checkpoint='{checkpoint}', prefix='backbone.')))\n")
    return str(path)


def data_options(data_root):
    return ['--cfg-options'] + [f'{loader}.dataset.data_root={data_root}'
                                for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


def test_train_stops_with_one_line(tmp_path, ade):
    """tools/train.py with a missing backbone checkpoint: exit status 1, one line naming the config
    key, the file and the converter command, no traceback."""
    missing = tmp_path / 'checkpoints' / 'dsnet_t_in1k_backbone.pth'
    code, out = run_tool('tools/train.py', pretrained_demo(tmp_path, missing), '--work-dir', str(tmp_path / 'w'),
                         *data_options(ade))
    assert code == 1, out[-3000:]
    assert 'Traceback' not in out, out[-3000:]
    lines = [line for line in out.splitlines() if 'does not exist' in line]
    assert len(lines) == 1, out[-3000:]
    assert f"model.backbone.init_cfg.checkpoint = '{missing}' does not exist" in lines[0]
    assert (f'python tools/model_converters/dsnet_to_mmvit.py '
            'https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_tiny_pretrained.pdparams '
            f'{tmp_path}/checkpoints/dsnet_t_in1k.pth') in lines[0]


def test_runner_hook_stops_before_init(tmp_path, ade):
    """mmseg's own training path (Runner.from_cfg(cfg).train(), what mmseg's tools/train.py runs
    with custom_imports=['mmvit_hybrid']): PretrainedCheckHook from the config's custom_hooks stops
    in before_run, before the weights are initialised."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(pretrained_demo(tmp_path, tmp_path / 'checkpoints/dsnet_t_in1k_backbone.pth'))
    assert {'type': 'PretrainedCheckHook'} in cfg.custom_hooks  # inherited from the base model config
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = ade
    cfg.work_dir = str(tmp_path / 'w')
    runner = Runner.from_cfg(cfg)
    inits = []
    runner.model.backbone.init_weights = lambda: inits.append(1)
    with pytest.raises(MissingCheckpointError, match='dsnet_to_mmvit.py'):
        runner.train()
    assert not inits


def test_from_scratch_trains_with_a_warning(tmp_path, ade):
    """`--cfg-options model.backbone.init_cfg=None` on a config that loads weights: trains, and the
    log says that the backbone trains from scratch."""
    config = pretrained_demo(tmp_path, tmp_path / 'checkpoints/dsnet_t_in1k_backbone.pth')
    code, out = run_tool('tools/train.py', config, '--work-dir', str(tmp_path / 'w'), *data_options(ade),
                         'model.backbone.init_cfg=None', 'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
                         'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2')
    assert code == 0, out[-3000:]
    assert 'Iter(train) [1/1]' in out
    warnings = [line for line in out.splitlines() if 'backbone trains from scratch' in line]
    assert len(warnings) == 1 and 'WARNING' in warnings[0], out[-3000:]
    assert osp.isfile(tmp_path / 'w' / 'iter_1.pth')
