"""Build decisions (mmvit_hybrid/ops/build_config.py, used by setup.py, tools/install.sh and
tools/misc/check_ops.py) on faked environments, the build requirements, and the dry run of the
prepared device script tools/gpu_check.sh. Everything here runs on a CPU machine."""
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from mmvit_hybrid.ops import build_config as bc

ROOT = Path(__file__).resolve().parents[1]


def env(**kw):
    """A BuildEnv: torch 2.13.0 built for CUDA 13.0, nothing else unless given."""
    defaults = dict(env={}, torch_version='2.13.0', torch_cuda='13.0', gpus=(), nvcc=None,
                    nvcc_version=None)
    defaults.update(kw)
    return bc.BuildEnv(**defaults)


NVCC = dict(nvcc='/usr/local/cuda-13.0/bin/nvcc', nvcc_version='13.0')
H200 = [(9, 0)]


# --------------------------------------------------------------------------------- finding nvcc

def test_find_nvcc_follows_torchs_search_order():
    exists = {'/opt/cuda/bin/nvcc', '/usr/local/cuda/bin/nvcc'}.__contains__
    # CUDA_HOME (or CUDA_PATH) wins, and must hold bin/nvcc
    assert bc.find_nvcc({'CUDA_HOME': '/opt/cuda'}, which=lambda _: '/x/nvcc',
                        exists=exists) == '/opt/cuda/bin/nvcc'
    assert bc.find_nvcc({'CUDA_PATH': '/opt/cuda'}, which=lambda _: None,
                        exists=exists) == '/opt/cuda/bin/nvcc'
    assert bc.find_nvcc({'CUDA_HOME': '/nowhere'}, which=lambda _: '/x/nvcc', exists=exists) is None
    # then PATH, then /usr/local/cuda
    assert bc.find_nvcc({}, which=lambda _: '/x/bin/nvcc', exists=exists) == '/x/bin/nvcc'
    assert bc.find_nvcc({}, which=lambda _: None, exists=exists) == '/usr/local/cuda/bin/nvcc'
    assert bc.find_nvcc({}, which=lambda _: None, exists=lambda _: False) is None


def test_nvcc_release_parses_the_version_banner():
    class Out:
        stdout = 'nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\n'

    assert bc.nvcc_release('nvcc', run=lambda *a, **k: Out()) == '13.0'

    def missing(*a, **k):
        raise FileNotFoundError('nvcc')

    assert bc.nvcc_release('nvcc', run=missing) is None


# ------------------------------------------------------------------------------ the CUDA plan

def test_gpu_and_nvcc_build_cuda_for_the_visible_gpus():
    plan = bc.plan_cuda(env(gpus=H200, **NVCC))
    assert plan.with_cuda and plan.arch_list == '9.0+PTX'
    assert plan.cuda_home == '/usr/local/cuda-13.0'
    two = bc.plan_cuda(env(gpus=[(9, 0), (8, 0), (9, 0)], **NVCC))
    assert two.arch_list == '8.0;9.0+PTX'
    assert bc.plan_cuda(env(env={'TORCH_CUDA_ARCH_LIST': '8.6'}, gpus=H200, **NVCC)).arch_list == '8.6'


def test_gpu_without_nvcc_builds_cpu_with_a_clear_message():
    plan = bc.plan_cuda(env(gpus=H200))
    assert not plan.with_cuda and 'no nvcc' in plan.reason and 'CUDA_HOME' in plan.reason
    with pytest.raises(bc.BuildConfigError, match='FORCE_CUDA=1, but no nvcc'):
        bc.plan_cuda(env(env={'FORCE_CUDA': '1'}, gpus=H200))


def test_nvcc_without_gpu_builds_cpu_unless_forced():
    plan = bc.plan_cuda(env(**NVCC))
    assert not plan.with_cuda and 'FORCE_CUDA=1' in plan.reason
    forced = bc.plan_cuda(env(env={'FORCE_CUDA': '1'}, **NVCC))
    # no GPU to query: the default list for the nvcc release (torch would fail on device 0)
    assert forced.with_cuda and forced.forced
    assert forced.arch_list == '7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX'
    forced_12 = bc.plan_cuda(env(env={'FORCE_CUDA': '1'}, torch_cuda='12.4', nvcc='/c/bin/nvcc',
                                 nvcc_version='12.4'))
    assert forced_12.arch_list == '6.0;7.0;7.5;8.0;8.6;8.9;9.0+PTX'
    assert bc.plan_cuda(env(env={'FORCE_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '9.0'},
                            **NVCC)).arch_list == '9.0'
    assert bc.plan_cuda(env(env={'FORCE_CUDA': '0'}, gpus=H200, **NVCC)).with_cuda  # 0 = not forced


def test_cpu_torch_and_mismatched_nvcc():
    assert not bc.plan_cuda(env(torch_cuda=None, gpus=H200, **NVCC)).with_cuda
    with pytest.raises(bc.BuildConfigError, match='CPU-only build'):
        bc.plan_cuda(env(env={'FORCE_CUDA': '1'}, torch_cuda=None, **NVCC))
    old = dict(nvcc='/c/bin/nvcc', nvcc_version='12.4')
    plan = bc.plan_cuda(env(gpus=H200, **old))
    assert not plan.with_cuda and 'major version' in plan.reason
    with pytest.raises(bc.BuildConfigError, match='major version'):
        bc.plan_cuda(env(env={'FORCE_CUDA': '1'}, **old))
    minor = bc.plan_cuda(env(gpus=H200, nvcc='/c/bin/nvcc', nvcc_version='13.1'))
    assert minor.with_cuda and minor.notes


def test_default_arch_lists_are_valid_for_torch():
    """Every default list is accepted by this torch's cpp_extension (its own arch table)."""
    from torch.utils import cpp_extension
    old = os.environ.get('TORCH_CUDA_ARCH_LIST')
    try:
        for _, arch_list in bc.DEFAULT_ARCH_LISTS:
            os.environ['TORCH_CUDA_ARCH_LIST'] = arch_list
            flags = cpp_extension._get_cuda_arch_flags()
            for arch in arch_list.replace('+PTX', '').split(';'):
                assert f'arch=compute_{arch.replace(".", "")}' in ' '.join(flags), (arch, flags)
    finally:
        if old is None:
            os.environ.pop('TORCH_CUDA_ARCH_LIST', None)
        else:
            os.environ['TORCH_CUDA_ARCH_LIST'] = old


# ---------------------------------------------------------------------------------------- mmcv

def test_mmcv_cache_key_names_the_cuda_build():
    cpu = bc.plan_mmcv(env(**NVCC))
    assert cpu.cache_key == 'torch-2.13.0-cpu' and not cpu.with_cuda
    # earlier installs cached CPU wheels under torch-<version>/: still found for CPU builds
    assert cpu.legacy_keys == ['torch-2.13.0']
    assert cpu.env['MMCV_WITH_OPS'] == '1' and cpu.env['FORCE_CUDA'] == '0'
    gpu = bc.plan_mmcv(env(gpus=H200, **NVCC))
    assert gpu.with_cuda and gpu.cache_key == 'torch-2.13.0-cu130-sm90ptx'
    assert gpu.legacy_keys == []  # a CPU wheel is never reused on a CUDA build
    assert gpu.env == {'MMCV_WITH_OPS': '1', 'FORCE_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '9.0+PTX',
                       'CUDA_HOME': '/usr/local/cuda-13.0'}
    # a GPU without nvcc: CPU ops, and mmcv's setup.py must not see the GPU (it would try CUDA)
    no_nvcc = bc.plan_mmcv(env(gpus=H200))
    assert not no_nvcc.with_cuda and no_nvcc.env['CUDA_VISIBLE_DEVICES'] == ''
    assert bc.arch_tag('7.5;8.0;12.0+PTX') == 'sm75-80-120ptx'


def test_mmcv_shell_plan_evaluates_in_bash():
    """install.sh evals the plan: check the variables and the array it gets, on this machine."""
    script = ('eval "$(%s mmvit_hybrid/ops/build_config.py mmcv-shell)" && '
              'echo "$MMCV_CACHE_KEY|${MMCV_LEGACY_KEYS[*]}|${#MMCV_BUILD_ENV[@]}|$MMCV_WITH_CUDA"'
              % sys.executable)
    out = subprocess.run(['bash', '-c', script], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''}, timeout=120)
    assert out.returncode == 0, out.stderr
    key, legacy, n_env, cuda = out.stdout.strip().split('|')
    version = torch.__version__.split('+')[0]
    assert key == f'torch-{version}-cpu' and legacy == f'torch-{version}' and cuda == '0'
    assert int(n_env) == 3  # MMCV_WITH_OPS, FORCE_CUDA, CUDA_VISIBLE_DEVICES


def test_install_script_uses_the_plan_and_checks_ops():
    text = (ROOT / 'tools/install.sh').read_text()
    assert 'build_config.py mmcv-shell' in text and 'MMCV_LEGACY_KEYS' in text
    assert 'build_config.py ops' in text  # the op's rebuild hash keys on the plan
    assert 'tools/misc/check_ops.py' in text


# ------------------------------------------------------------------------- post-install verdict

def test_verdict_fails_loudly_when_a_gpu_lacks_cuda_kernels():
    ok, lines = bc.verdict(True, {'mmcv': False, 'mmvit_hybrid': True})
    assert not ok and any(line.startswith('FAIL mmcv') and 'GPU is visible' in line for line in lines)
    assert bc.verdict(True, {'mmcv': True, 'mmvit_hybrid': True})[0]
    assert bc.verdict(False, {'mmcv': False, 'mmvit_hybrid': False})[0]
    ok, lines = bc.verdict(False, {'mmvit_hybrid': None})
    assert not ok and 'missing' in lines[0]


def test_check_ops_script_on_this_machine(capsys):
    """tools/misc/check_ops.py as install.sh runs it (its main in this process: the script's own
    start is covered by tools/gpu_check.sh's dry run below)."""
    spec = importlib.util.spec_from_file_location('check_ops', ROOT / 'tools/misc/check_ops.py')
    check_ops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_ops)
    code = check_ops.main([])
    out = capsys.readouterr().out
    gpu = torch.cuda.is_available()
    assert f'GPU visible: {gpu}' in out
    assert re.search(r'(ok|FAIL) +mmvit_hybrid', out), out
    assert re.search(r'(ok|FAIL) +mmcv', out), out
    if not gpu:
        assert code == 0, out
        assert 'CPU kernels only (no GPU visible)' in out


# --------------------------------------------------------------------------------- setup.py

def run_setup(tmp_path, **extra_env):
    return subprocess.run([sys.executable, 'setup.py', '--version'], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **extra_env})


def fake_cuda_home(tmp_path, release):
    """A CUDA_HOME whose bin/nvcc only prints a version banner."""
    nvcc = tmp_path / 'bin' / 'nvcc'
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text(f'#!/bin/sh\necho "Cuda compilation tools, release {release}, V{release}.0"\n')
    nvcc.chmod(0o755)
    return str(tmp_path)


def test_setup_force_cuda_without_nvcc_stops_with_a_clear_error(tmp_path):
    out = run_setup(tmp_path, FORCE_CUDA='1', CUDA_HOME=str(tmp_path / 'none'))
    assert out.returncode != 0
    assert 'FORCE_CUDA=1, but' in out.stderr and 'IndexError' not in out.stderr


def test_setup_without_gpu_builds_cpu_or_forced_cuda_with_default_archs(tmp_path):
    home = fake_cuda_home(tmp_path, torch.version.cuda or '13.0')
    plain = run_setup(tmp_path, CUDA_HOME=home, CUDA_VISIBLE_DEVICES='')
    assert plain.returncode == 0, plain.stderr
    assert '[mmvit_hybrid] CPU only' in plain.stderr
    if torch.version.cuda:
        forced = run_setup(tmp_path, CUDA_HOME=home, CUDA_VISIBLE_DEVICES='', FORCE_CUDA='1')
        assert forced.returncode == 0, forced.stderr
        expected = bc.default_arch_list(torch.version.cuda)
        assert f'[mmvit_hybrid] CUDA: FORCE_CUDA=1' in forced.stderr and expected in forced.stderr


def test_build_requirements_leave_torch_to_the_environment(tmp_path):
    """An isolated build must not fetch a torch of its own (the op would be compiled against it, not
    against the user's): pyproject.toml lists no torch, and setup.py without an importable torch
    builds the package without the op and says how to get it."""
    build = re.search(r'requires = \[(.*)\]', (ROOT / 'pyproject.toml').read_text()).group(1)
    assert 'torch' not in build and 'setuptools' in build
    shim = tmp_path / 'torch'
    shim.mkdir()
    (shim / '__init__.py').write_text('raise ImportError("no torch in this build environment")\n')
    out = run_setup(tmp_path, PYTHONPATH=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert 'torch is not importable' in out.stderr and '--no-build-isolation' in out.stderr


# ------------------------------------------------------------------- the device script, dry run

GPU_CHECK_STEPS = ('build', 'check_ops', 'op_tests', 'op_bench', 'amp_tests', 'models_bf16',
                   'det_amp', 'seg_amp', 'syncbn', 'demo_data', 'train_amp')


def test_gpu_check_dry_run(tmp_path):
    """tools/gpu_check.sh --dry-run runs every step of the GPU script on CPU at toy sizes and
    ends with the table; a step that breaks fails here. The training steps run
    through the same code as on the GPU: AmpOptimWrapper (CPU bf16 autocast) for Mask R-CNN and
    UperNet beside Swin-T, a 1-process gloo group with DDP, and tools/train.py on the demo config."""
    out = subprocess.run(['bash', 'tools/gpu_check.sh', '--dry-run', '--out', str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, 'PYTHON': sys.executable, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    table = (tmp_path / 'gpu_check.md').read_text()
    assert table.strip().splitlines()[-1].startswith('|')  # ends with the table
    for name in GPU_CHECK_STEPS:
        assert re.search(rf'\| step {name} \| exit 0, \d+ s.* \| exit 0.* \| PASS \|', table), name
    assert 'passed, 0 failed' in table
    assert re.search(r'op tiny B1 bfloat16 fwd\+bwd \| fused [\d.]+ ms', table)
    assert re.search(r'volo_d1 32 B1 bf16 AMP fwd\+bwd \| ours', table)
    assert re.search(r'bot_attn 32 B1 bf16 AMP fwd\+bwd \| ours', table)
    # Mask R-CNN / UperNet steps beside Swin-T, with the per-FLOP ratio and finite losses
    for kind, size, what, rows in (('det', '64x96', 'Mask R-CNN', ('swin_t', 'dsnet_t')),
                                   ('seg', '64x64', 'UperNet', ('swin_t',))):
        for row in rows:
            assert re.search(rf'\| {kind} {row} {size} B2 bf16 {what} step \| \d+ ms/step; \d+ GFLOPs; '
                             rf'time/Swin-T [\d.]+x, FLOPs/Swin-T [\d.]+x, time per FLOP/Swin-T [\d.]+x; '
                             rf'loss [\d.]+.* \| finite losses \| PASS \|', table), (kind, row)
    assert re.search(r'\| SyncBN, 1-process gloo group \| dsnet_t UperNet 64x64 B2 bf16: \d+ SyncBN modules, '
                     r'DDP train_step \d+ ms, losses [\d., ]+ vs plain BN [\d.]+ .*\| PASS \|', table)
    assert re.search(r'\| tools/train.py demo config \| fp32, iteration 1/1, loss [\d.]+, bbox mAP [\d.]+, '
                     r'segm mAP [\d.]+ \| .* \| PASS \|', table)
    # a device call brings back 8 files at most: the table, the step list and one archive
    assert sorted(p.name for p in tmp_path.iterdir()) == ['gpu_check.md', 'gpu_check_logs.tar.gz', 'steps.tsv']
    with tarfile.open(tmp_path / 'gpu_check_logs.tar.gz') as tar:
        names = set(tar.getnames())
    assert {f'{name}.log' for name in GPU_CHECK_STEPS} | {'det_amp.json', 'syncbn.json'} <= names


# ------------------------------------------------------------------ the op tests with torch alone

TORCH_ONLY = '''
import importlib.abc, sys
BLOCKED = ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain')


class Blocker(importlib.abc.MetaPathFinder):
    """Makes the OpenMMLab stack not importable, as on a machine with only torch."""

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)


sys.meta_path.insert(0, Blocker())
import pytest
code = pytest.main(sys.argv[1:])
assert not any(m.split('.')[0] in BLOCKED for m in sys.modules), 'an OpenMMLab module was imported'
sys.exit(code)
'''


def test_op_tests_run_with_torch_alone():
    """tests/test_outlook_attention*.py import and pass without mmengine, mmcv and mmdet (a
    subset here; the full files run the same way on the GPU machine)."""
    out = subprocess.run(
        [sys.executable, '-c', TORCH_ONLY, '-q', '-p', 'no:cacheprovider',
         'tests/test_outlook_attention_op.py', 'tests/test_outlook_attention_robustness.py',
         '-k', 'fallback or bad_input_raises or backward_computes or (opcheck and cpu) or empty'],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert re.search(r'\d+ passed', out.stdout) and 'failed' not in out.stdout


def test_cuda_home_behind_a_wrapper_nvcc():
    """/usr/local/bin/nvcc exec'ing /usr/local/cuda-13.0/bin/nvcc (this machine's layout): the
    toolkit is the folder with the headers, not /usr/local."""
    headers = {'/usr/local/cuda/include/cuda.h'}.__contains__
    assert bc.find_cuda_home({}, '/usr/local/bin/nvcc', exists=headers) == '/usr/local/cuda'
    assert bc.find_cuda_home({'CUDA_HOME': '/opt/c'}, '/usr/local/bin/nvcc', exists=headers) == '/opt/c'
    plan = bc.plan_cuda(env(gpus=H200, cuda_home='/usr/local/cuda', nvcc='/usr/local/bin/nvcc',
                            nvcc_version='13.0'))
    assert plan.cuda_home == '/usr/local/cuda'
