"""The package installed as a user installs it: a wheel, into a fresh venv that already holds the
OpenMMLab stack, then a config outside the repository that inherits this package's demo config,
trained and tested with mmdet's own tools/train.py and tools/test.py.

The fresh venv sees the stack of the project's venv through a .pth file pointing at a folder of
links to every entry of the project's site-packages except this package (its editable install and
the `mmvit_hybrid` link tools/install.sh adds), so the only mmvit_hybrid it can import is the wheel's.
The wheel is built from a copy of the source tree with `pip wheel --no-build-isolation` and
MMVIT_HYBRID_WITH_OPS=0 (compiling the op takes minutes; without it the package must still import
and the op must fall back with one warning). The pieces checked:

* the wheel holds the configs and tools as regular files (the repository has links there);
* its install_requires ranges are met by the stack (no exact pins that a user's environment misses);
* `python -m mmvit_hybrid.config_path` names the installed configs, and a user's config inherits
  one with `_base_` through an environment variable (mmengine's `{{$VAR:}}` substitution) or an
  absolute path;
* mmdet's own tools train it for two iterations and test the checkpoint, writing pictures.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from glob import glob

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SITE = sysconfig.get_paths()['purelib']  # the project's venv (the stack)
NOT_COPIED = ('.venv', '.git', 'build', 'dist', 'work_dirs', 'data', 'checkpoints', 'outputs', '__pycache__',
              '.pytest_cache', '*.egg-info', '*.so', '*.pth', '*.onnx')


def run(cmd, cwd, env=None, timeout=300):
    out = subprocess.run([str(c) for c in cmd], cwd=str(cwd), capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert out.returncode == 0, f'{cmd}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}'
    return out.stdout + out.stderr


@pytest.fixture(scope='module')
def user_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('user_env')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('PIP_', 'PYTHON'))}
    env.update(PIP_CONFIG_FILE='/dev/null', PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1',
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    # the wheel, from a copy of the tree (the build writes build/ and *.egg-info next to setup.py)
    src = tmp / 'src'
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*NOT_COPIED))
    run([sys.executable, '-m', 'pip', 'wheel', '--no-build-isolation', '--no-deps', '-w', tmp / 'dist',
         src], tmp, dict(env, MMVIT_HYBRID_WITH_OPS='0'))
    [wheel] = glob(str(tmp / 'dist' / 'mmvit_hybrid-*.whl'))
    # a venv that holds the stack but not this package
    stack = tmp / 'stack'
    stack.mkdir()
    for name in os.listdir(SITE):
        if not name.startswith(('mmvit_hybrid', '__editable__', '_mmvit_hybrid')):
            os.symlink(osp.join(SITE, name), stack / name)
    run([sys.executable, '-m', 'venv', '--without-pip', tmp / 'venv'], tmp, env)
    python = tmp / 'venv' / 'bin' / 'python'
    venv_site = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                    tmp, env).strip()
    with open(osp.join(venv_site, 'openmmlab_stack.pth'), 'w') as f:
        f.write(f'{stack}\n')
    run([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps', wheel], tmp, env)
    return dict(tmp=tmp, env=env, python=python, site=venv_site, wheel=wheel)


def test_wheel_ships_configs_and_tools_as_files(user_env):
    with zipfile.ZipFile(user_env['wheel']) as z:
        infos = {i.filename: i for i in z.infolist()}
    for name in ['configs/demo/mask_rcnn_dsnet_t_demo.py', 'configs/_base_/models/mask_rcnn_dsnet_fpn.py',
                 'configs/dsnet/dsnet_t_in1k.py', 'tools/misc/make_demo_coco.py',
                 'tools/model_converters/dsnet_to_mmvit.py', 'model-index.yml']:
        info = infos[f'mmvit_hybrid/.mim/{name}']
        assert (info.external_attr >> 16) & 0o170000 == 0o100000, f'{name} is not a regular file'
        assert info.file_size > 0
    # every config of the repository is in the wheel
    shipped = {n.split('/.mim/', 1)[1] for n in infos if '/.mim/configs/' in n and n.endswith('.py')}
    in_repo = {osp.relpath(p, ROOT) for p in glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)}
    assert in_repo <= shipped, sorted(in_repo - shipped)[:5]


def test_installed_package_imports_and_its_requirements_are_met(user_env):
    """In the user's venv: this wheel's package (not the checkout's), requirement ranges met by the
    stack's versions, no compiled op (the op falls back with exactly one warning), and a config that
    inherits an installed one through an absolute path."""
    check = f'''
import importlib.metadata as md, os.path as osp, warnings
from packaging.requirements import Requirement
import torch, mmvit_hybrid
assert mmvit_hybrid.__file__.startswith({user_env['site']!r}), mmvit_hybrid.__file__
for req in map(Requirement, md.requires('mmvit_hybrid')):
    if req.marker is None or req.marker.evaluate({{'extra': ''}}):
        assert req.specifier.contains(md.version(req.name), prereleases=True), (str(req), md.version(req.name))
from mmvit_hybrid.ops import ext_available, outlook_attention
assert not ext_available()
v, a = torch.randn(1, 4, 6, 6), torch.randn(1, 2, 6, 6, 9, 9).softmax(-1)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    outlook_attention(v, a, 3, 1, 1); outlook_attention(v, a, 3, 1, 1)
assert sum('not available' in str(w.message) for w in caught) == 1, [str(w.message) for w in caught]
from mmvit_hybrid.config_path import get_config_path
base = get_config_path('demo/mask_rcnn_dsnet_t_demo.py')
assert base.startswith({user_env['site']!r}) and not osp.islink(base)
with open({str(user_env['tmp'] / 'abs_user.py')!r}, 'w') as f:
    f.write(f'_base_ = [{{base!r}}]\\nmodel = dict(backbone=dict(arch="small"))\\n')
from mmengine.config import Config
cfg = Config.fromfile({str(user_env['tmp'] / 'abs_user.py')!r})
assert cfg.model.backbone.type == 'DSNet' and cfg.model.backbone.arch == 'small'
assert cfg.model.neck.out_channels == 64 and cfg.custom_imports.imports == ['mmvit_hybrid']
print('OK')
'''
    out = run([user_env['python'], '-c', check], user_env['tmp'], user_env['env'])
    assert 'OK' in out.splitlines()


def test_user_config_trains_and_tests_with_mmdet_tools(user_env):
    tmp, python, env = user_env['tmp'], user_env['python'], dict(user_env['env'])
    configs = run([python, '-m', 'mmvit_hybrid.config_path'], tmp, env).strip().splitlines()[-1]
    assert configs == osp.join(user_env['site'], 'mmvit_hybrid', '.mim', 'configs')
    env['MMVIT_HYBRID_CONFIGS'] = configs
    user = tmp / 'my_project'
    user.mkdir()
    run([python, osp.join(configs, '..', 'tools', 'misc', 'make_demo_coco.py'), '--out', user / 'data',
         '--num-train', '4', '--num-val', '2', '--img-size', '64'], user, env)
    data = f'{user}/data/'
    (user / 'my_mask_rcnn.py').write_text(f'''\
_base_ = ['{{{{$MMVIT_HYBRID_CONFIGS:}}}}/demo/mask_rcnn_dsnet_t_demo.py']
train_dataloader = dict(batch_size=2, dataset=dict(data_root={data!r}))
val_dataloader = dict(batch_size=2, dataset=dict(data_root={data!r}))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={data + 'annotations/instances_val.json'!r})
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
''')
    mmdet_tools = osp.join(SITE, 'mmdet', '.mim', 'tools')
    out = run([python, osp.join(mmdet_tools, 'train.py'), 'my_mask_rcnn.py', '--work-dir', 'work'],
              user, env, timeout=600)
    assert f'Using env variable `MMVIT_HYBRID_CONFIGS` with value of {configs}' in out
    assert 'Iter(train) [2/2]' in out or 'Epoch(train) [1][2/2]' in out, out[-3000:]
    ckpt = user / 'work' / 'epoch_1.pth'
    assert ckpt.is_file()
    out = run([python, osp.join(mmdet_tools, 'test.py'), 'my_mask_rcnn.py', ckpt, '--work-dir', 'work',
               '--show-dir', 'vis'], user, env, timeout=600)
    assert 'coco/bbox_mAP' in out and 'coco/segm_mAP' in out, out[-3000:]
    pictures = glob(str(user / 'work' / '*' / 'vis' / '*.png'))
    assert len(pictures) == 2, pictures
