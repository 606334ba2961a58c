"""tools/train.py and tools/test.py end to end on the demo config (tiny synthetic COCO, CPU).

Train one epoch, evaluate the checkpoint, then auto-resume for a second epoch. Training, testing
and mmdet's own train tool run in fresh interpreters, as a user runs them; the resume and the
missing-dataset error run in processes forked from a warm interpreter (tests/warm_tools.py).
"""
import importlib.util
import json
import os.path as osp
import pickle
import subprocess
import sys
from glob import glob

import pytest
from warm_tools import run_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs/demo/mask_rcnn_dsnet_t_demo.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
NUM_TRAIN, NUM_VAL, BATCH = 4, 2, 2  # 2 iterations per epoch


def run(script, *args):
    """Run ``tools/<script>`` with this interpreter from the repo root; return its output."""
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', script), *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def cfg_options(data_root, **extra):
    """``--cfg-options`` pointing the demo config at ``data_root``, with small loaders."""
    ann = osp.join(data_root, 'annotations/instances_val.json')
    opts = dict(extra)
    for loader in LOADERS:
        opts.update({f'{loader}.dataset.data_root': data_root + '/', f'{loader}.num_workers': 0,
                     f'{loader}.persistent_workers': False, f'{loader}.batch_size': BATCH})
    opts.update({'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann,
                 'default_hooks.logger.interval': 1, 'default_hooks.checkpoint.interval': 1})
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Demo data and a work dir holding one trained epoch (no validation during training)."""
    tmp = tmp_path_factory.mktemp('demo')
    data_root, work_dir = str(tmp / 'data'), str(tmp / 'work_dir')
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/misc/make_demo_coco.py'),
                    '--out', data_root, '--num-train', str(NUM_TRAIN), '--num-val', str(NUM_VAL),
                    '--img-size', '64'], check=True, capture_output=True)
    log = run('train.py', CONFIG, '--work-dir', work_dir,
              *cfg_options(data_root, **{'train_cfg.max_epochs': 1, 'train_cfg.val_begin': 2}))
    return dict(data_root=data_root, work_dir=work_dir, log=log)


def test_train(trained):
    assert 'Epoch(train) [1][2/2]' in trained['log']  # progress is logged
    assert osp.isfile(osp.join(trained['work_dir'], 'epoch_1.pth'))


def test_test(trained, tmp_path):
    out = str(tmp_path / 'preds.pkl')
    log = run('test.py', CONFIG, osp.join(trained['work_dir'], 'epoch_1.pth'),
              '--work-dir', str(tmp_path), '--out', out, '--show-dir', 'vis',
              *cfg_options(trained['data_root']))
    assert 'coco/bbox_mAP:' in log
    [metrics_file] = glob(osp.join(tmp_path, '*', '*.json'))
    with open(metrics_file) as f:
        metrics = json.load(f)
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'} <= metrics.keys()
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == NUM_VAL
    assert all(isinstance(m, dict) and 'counts' in m for m in preds[0]['pred_instances']['masks'])
    assert len(glob(osp.join(tmp_path, '*', 'vis', '*.png'))) == NUM_VAL  # --show-dir


def test_resume(trained):
    """(forked from the warm interpreter, tests/warm_tools.py: the two runs above are the fresh ones)"""
    work_dir = trained['work_dir']
    code, log = run_tool('tools/train.py', CONFIG, '--work-dir', work_dir, '--resume',
                         *cfg_options(trained['data_root'], **{
                             'train_cfg.max_epochs': 2, 'train_cfg.val_begin': 3,
                             'default_hooks.checkpoint.max_keep_ckpts': -1}))
    assert code == 0, log[-3000:]
    assert f'Auto resumed from the latest checkpoint {osp.join(work_dir, "epoch_1.pth")}' in log
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Epoch(train) [1]' not in log and 'Epoch(train) [2][2/2]' in log
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))


def load_tool(name):
    """Import ``tools/<name>.py`` (not a package) as a module."""
    path = osp.join(ROOT, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('argv, missing', [
    (['train.py', 'no/such_config.py'], 'config file no/such_config.py'),
    (['train.py', CONFIG, '--resume', 'no/such.pth'], 'checkpoint no/such.pth'),
    (['test.py', 'no/such_config.py', 'x.pth'], 'config file no/such_config.py'),
    (['test.py', CONFIG, 'no/such.pth'], 'checkpoint no/such.pth'),
])
def test_missing_file_is_reported(argv, missing, monkeypatch, capsys):
    tool = load_tool(argv[0][:-3])
    monkeypatch.setattr(sys, 'argv', argv)
    with pytest.raises(SystemExit) as info:
        tool.parse_args()
    assert info.value.code == 2
    assert f'{missing} does not exist' in capsys.readouterr().err


def test_missing_dataset_is_reported(tmp_path):
    code, out = run_tool('tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
                         f'train_dataloader.dataset.data_root={tmp_path}/nowhere/', timeout=120)
    assert code != 0
    assert f"train_dataloader.dataset.data_root = '{tmp_path}/nowhere/' is not a folder" in out
    assert '--cfg-options train_dataloader.dataset.data_root=DIR/' in out


def test_mmdet_own_train_tool_trains_our_config(trained, tmp_path):
    """custom_imports is enough: the installed mmdet's tools/train.py trains the demo config."""
    import mmdet
    mmdet_train = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    proc = subprocess.run([sys.executable, mmdet_train, CONFIG, '--work-dir', str(tmp_path),
                           *cfg_options(trained['data_root'], **{'train_cfg.max_epochs': 1,
                                                                 'train_cfg.val_begin': 2})],
                          cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'Epoch(train) [1][2/2]' in proc.stdout
    assert osp.isfile(osp.join(tmp_path, 'epoch_1.pth'))


def test_warm_tool_runs_are_separate_processes(tmp_path):
    """tests/warm_tools.py, which the other end-to-end tests rely on: a forked run gets its own
    argv, environment, working directory and exit status, its output (also C-level writes to fd 2),
    and this package is not imported before the script imports it."""
    import os
    import signal

    from warm_tools import ToolRun
    script = tmp_path / 'probe.py'
    script.write_text(
        'import os, sys\n'
        'print("preloaded:", "mmvit_hybrid" in sys.modules, "torch" in sys.modules)\n'
        'print("argv:", sys.argv[1:], "cwd:", os.getcwd(), "env:", os.environ.get("PROBE"))\n'
        'os.write(2, b"fd2 write\\n")\n'
        'if sys.argv[1] == "hang":\n'
        '    print("waiting", flush=True)\n'
        '    import time; time.sleep(60)\n'
        'sys.exit(int(sys.argv[1]))\n')
    code, out = run_tool(str(script), '3', env=dict(PROBE='x'))
    assert code == 3
    assert 'preloaded: False True' in out  # the stack is warm, this package is not
    assert f"argv: ['3'] cwd: {ROOT} env: x" in out and 'fd2 write' in out
    assert os.environ.get('PROBE') is None  # the run's environment stayed in the run
    run = ToolRun(str(script), 'hang')
    assert 'waiting' in run.kill_when('waiting', timeout=60)
    assert run.process.exitcode == -signal.SIGKILL
