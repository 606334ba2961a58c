"""Build decisions for compiled ops: this package's ``mmvit_hybrid._ext`` (``setup.py``) and the
mmcv wheel (``tools/install.sh``), and the post-install verdict (``tools/misc/check_ops.py``).

Everything that decides is a pure function of an environment passed in (variables, nvcc path
and version, torch's CUDA version, visible GPUs), so ``tests/test_build.py`` runs every case on
a CPU machine. :func:`probe` collects the real environment. The module imports only the standard
library (``setup.py`` loads it by path, before the package is importable; torch is imported
inside :func:`probe` only).

Rules (CUDA is built only when it can work, and never silently skipped when asked for):

* ``FORCE_CUDA=1`` builds the CUDA kernels; without nvcc, with a CPU-only torch, or with an nvcc
  whose major version differs from torch's CUDA, it stops with a clear error.
* Otherwise CUDA is built when a GPU is visible, nvcc is found and its major version matches
  torch's CUDA; when one of them is missing the build says why and builds the CPU kernels.
* ``TORCH_CUDA_ARCH_LIST`` is used when set. Otherwise the visible GPUs' capabilities are used
  (what torch would pick, made explicit so the wheel cache key names them), or, with no GPU
  visible (``FORCE_CUDA=1`` on a build machine), a default list for the nvcc version: torch's
  cpp_extension would otherwise fail on a GPU-less machine (it queries device 0).
"""
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

# Default architectures for FORCE_CUDA=1 without a visible GPU, by nvcc version (the newest
# entry not above the nvcc version applies). CUDA 13 dropped offline compilation for compute
# capabilities below 7.5 (CUDA 13.0 release notes); 12.8 added Blackwell (10.0, 12.0); 11.8
# added Hopper (9.0). The last entry carries PTX so newer GPUs JIT-compile it.
DEFAULT_ARCH_LISTS: List[Tuple[Tuple[int, int], str]] = [
    ((11, 0), '6.0;7.0;7.5;8.0+PTX'),
    ((11, 8), '6.0;7.0;7.5;8.0;8.6;8.9;9.0+PTX'),
    ((12, 8), '7.0;7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX'),
    ((13, 0), '7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX'),
]


class BuildConfigError(RuntimeError):
    """The environment cannot give what was asked for (e.g. FORCE_CUDA=1 without nvcc)."""


@dataclass
class BuildEnv:
    """What the build decisions depend on.

    Args:
        env (Mapping[str, str]): Environment variables.
        torch_version (str): ``torch.__version__`` without the local part, e.g. ``2.13.0``.
        torch_cuda (str, optional): ``torch.version.cuda`` (None for a CPU-only torch).
        gpus (Sequence[tuple]): Compute capabilities of the visible GPUs, e.g. ``[(9, 0)]``.
        nvcc (str, optional): Path of nvcc, None if not found.
        nvcc_version (str, optional): nvcc's release, e.g. ``13.0``.
        cuda_home (str, optional): The toolkit folder (see :func:`find_cuda_home`); default
            the folder above nvcc's ``bin``.
    """
    env: Mapping[str, str]
    torch_version: str
    torch_cuda: Optional[str]
    gpus: Sequence[Tuple[int, int]] = ()
    nvcc: Optional[str] = None
    nvcc_version: Optional[str] = None
    cuda_home: Optional[str] = None


@dataclass
class CudaPlan:
    """The decision: build CUDA kernels or not, why, and for which architectures."""
    with_cuda: bool
    reason: str
    arch_list: Optional[str] = None
    cuda_home: Optional[str] = None
    forced: bool = False
    notes: List[str] = field(default_factory=list)

    def describe(self) -> str:
        """A one-line tag of what gets compiled (part of install.sh's rebuild hash)."""
        return f'cuda arch={self.arch_list}' if self.with_cuda else 'cpu'


def _major_minor(version: Optional[str]) -> Optional[Tuple[int, int]]:
    if not version:
        return None
    m = re.match(r'(\d+)\.(\d+)', version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def find_nvcc(env: Mapping[str, str], which: Callable[[str], Optional[str]] = shutil.which,
              exists: Callable[[str], bool] = os.path.exists) -> Optional[str]:
    """nvcc as torch's cpp_extension finds the toolkit: ``CUDA_HOME``/``CUDA_PATH``, then nvcc on
    ``PATH``, then ``/usr/local/cuda``. Returns the nvcc path or None."""
    home = env.get('CUDA_HOME') or env.get('CUDA_PATH')
    if home:
        nvcc = os.path.join(home, 'bin', 'nvcc')
        return nvcc if exists(nvcc) else None
    nvcc = which('nvcc')
    if nvcc:
        return nvcc
    nvcc = '/usr/local/cuda/bin/nvcc'
    return nvcc if exists(nvcc) else None


def find_cuda_home(env: Mapping[str, str], nvcc: Optional[str],
                   exists: Callable[[str], bool] = os.path.exists) -> Optional[str]:
    """The toolkit folder for ``nvcc``: ``CUDA_HOME``/``CUDA_PATH`` if set, else the folder above
    nvcc's real ``bin`` if it holds ``include/cuda.h``, else ``/usr/local/cuda`` if that does.
    (An nvcc on PATH may be a wrapper script, e.g. ``/usr/local/bin/nvcc`` exec'ing the real one;
    torch would take ``/usr/local`` and find no headers.)"""
    home = env.get('CUDA_HOME') or env.get('CUDA_PATH')
    if home or not nvcc:
        return home or None
    for candidate in (os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), '/usr/local/cuda'):
        if exists(os.path.join(candidate, 'include', 'cuda.h')):
            return candidate
    return os.path.dirname(os.path.dirname(nvcc))


def nvcc_release(nvcc: str, run=subprocess.run) -> Optional[str]:
    """The ``release X.Y`` of ``nvcc --version``, or None if it cannot be run."""
    try:
        out = run([nvcc, '--version'], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'release (\d+\.\d+)', out)
    return m.group(1) if m else None


def default_arch_list(nvcc_version: Optional[str]) -> str:
    """The default ``TORCH_CUDA_ARCH_LIST`` for an nvcc release (see ``DEFAULT_ARCH_LISTS``)."""
    version = _major_minor(nvcc_version) or (0, 0)
    chosen = DEFAULT_ARCH_LISTS[0][1]
    for since, arch_list in DEFAULT_ARCH_LISTS:
        if version >= since:
            chosen = arch_list
    return chosen


def gpu_arch_list(gpus: Sequence[Tuple[int, int]]) -> str:
    """The visible GPUs' capabilities as an arch list, PTX on the newest (as torch does)."""
    archs = sorted(set(tuple(g) for g in gpus))
    names = [f'{major}.{minor}' for major, minor in archs]
    names[-1] += '+PTX'
    return ';'.join(names)


def plan_cuda(be: BuildEnv) -> CudaPlan:
    """Decide whether to compile CUDA kernels (see the module docstring for the rules).

    Raises:
        BuildConfigError: ``FORCE_CUDA=1`` where CUDA cannot be built.
    """
    forced = be.env.get('FORCE_CUDA', '0') == '1'
    cuda_home = be.cuda_home or (os.path.dirname(os.path.dirname(be.nvcc)) if be.nvcc else None)

    def cpu(reason):
        if forced:
            raise BuildConfigError(f'FORCE_CUDA=1, but {reason}. Unset FORCE_CUDA to build the '
                                   'CPU kernels only.')
        return CudaPlan(False, reason, forced=False)

    if be.torch_cuda is None:
        return cpu(f'torch {be.torch_version} is a CPU-only build (torch.version.cuda is None)')
    if be.nvcc is None:
        return cpu('no nvcc was found (CUDA_HOME/CUDA_PATH unset or without bin/nvcc, no nvcc '
                   f'on PATH, no /usr/local/cuda); install the CUDA {be.torch_cuda} toolkit and '
                   'set CUDA_HOME to build the CUDA kernels')
    nv, tc = _major_minor(be.nvcc_version), _major_minor(be.torch_cuda)
    if nv is None:
        return cpu(f'{be.nvcc} --version did not report a release')
    if nv[0] != tc[0]:
        return cpu(f'nvcc {be.nvcc_version} ({be.nvcc}) and torch\'s CUDA {be.torch_cuda} differ '
                   'in major version (torch\'s cpp_extension refuses that); install the CUDA '
                   f'{be.torch_cuda} toolkit')
    if not be.gpus and not forced:
        return CudaPlan(False, f'nvcc {be.nvcc_version} found but no GPU is visible; building '
                        'the CPU kernels only (FORCE_CUDA=1 builds the CUDA kernels anyway, '
                        f'default TORCH_CUDA_ARCH_LIST={default_arch_list(be.nvcc_version)})')
    arch_list = be.env.get('TORCH_CUDA_ARCH_LIST') or None
    if arch_list:
        source = 'TORCH_CUDA_ARCH_LIST'
    elif be.gpus:
        arch_list, source = gpu_arch_list(be.gpus), 'the visible GPUs'
    else:
        arch_list, source = default_arch_list(be.nvcc_version), f'the default for nvcc {be.nvcc_version}'
    why = 'FORCE_CUDA=1' if forced else f'{len(be.gpus)} GPU(s) visible'
    plan = CudaPlan(True, f'{why}, nvcc {be.nvcc_version}: building the CUDA kernels for '
                    f'{arch_list} ({source})', arch_list=arch_list, cuda_home=cuda_home,
                    forced=forced)
    if nv != tc:
        plan.notes.append(f'nvcc {be.nvcc_version} and torch\'s CUDA {be.torch_cuda} differ in '
                          'minor version (allowed by torch)')
    return plan


def arch_tag(arch_list: str) -> str:
    """A file-name tag for an arch list: ``7.5;9.0+PTX`` -> ``sm75-90ptx``."""
    parts = [a.strip().replace('.', '').replace('+PTX', 'ptx').lower()
             for a in re.split(r'[;\s]+', arch_list) if a.strip()]
    return 'sm' + '-'.join(parts)


@dataclass
class MmcvBuild:
    """How install.sh builds (or finds) the mmcv wheel.

    Args:
        env (Dict[str, str]): Variables for mmcv's ``setup.py``.
        cache_key (str): Folder of the wheel cache holding this build.
        legacy_keys (List[str]): Older folders whose wheels are valid for this build too.
        with_cuda (bool): Whether the wheel has CUDA ops.
        reason (str): The plan's explanation.
    """
    env: Dict[str, str]
    cache_key: str
    legacy_keys: List[str]
    with_cuda: bool
    reason: str


def plan_mmcv(be: BuildEnv) -> MmcvBuild:
    """mmcv's build: its CUDA ops exactly when :func:`plan_cuda` builds ours with CUDA.

    The cache key names torch and the CUDA build (``torch-2.13.0-cpu``,
    ``torch-2.13.0-cu130-sm90ptx``), so a CPU wheel is never reused for a CUDA build. CPU builds
    also accept the key of earlier installs, ``torch-<version>`` (those were CPU wheels on CPU
    machines; on GPU machines they are never consulted).
    """
    plan = plan_cuda(be)
    env = {'MMCV_WITH_OPS': '1'}
    if plan.with_cuda:
        env.update(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=plan.arch_list, CUDA_HOME=plan.cuda_home)
        cu = 'cu' + be.torch_cuda.replace('.', '')
        key = f'torch-{be.torch_version}-{cu}-{arch_tag(plan.arch_list)}'
        legacy = []
    else:
        # mmcv's setup.py builds CUDA whenever torch sees a GPU; hide it when we cannot build it
        env.update(FORCE_CUDA='0', CUDA_VISIBLE_DEVICES='')
        key = f'torch-{be.torch_version}-cpu'
        legacy = [f'torch-{be.torch_version}']
    return MmcvBuild(env, key, legacy, plan.with_cuda, plan.reason)


def verdict(gpu_visible: bool, libs: Mapping[str, Optional[bool]]) -> Tuple[bool, List[str]]:
    """The post-install check: which libraries' ops have CUDA kernels, and whether that is fine.

    Args:
        gpu_visible (bool): Whether torch sees a GPU.
        libs (Mapping[str, Optional[bool]]): Library name -> True (compiled with CUDA),
            False (compiled, CPU only) or None (its compiled ops are missing).

    Returns:
        tuple: (ok, report lines). Not ok when a GPU is visible and a library lacks CUDA kernels,
        or when a library's compiled ops are missing.
    """
    ok, lines = True, []
    for name, cuda in libs.items():
        if cuda is None:
            ok = False
            lines.append(f'FAIL {name}: compiled ops missing')
        elif cuda:
            lines.append(f'ok   {name}: CUDA kernels compiled in')
        elif gpu_visible:
            ok = False
            lines.append(f'FAIL {name}: built without CUDA kernels, but a GPU is visible (CUDA '
                         'inputs would fall back or fail); rebuild on this machine with nvcc '
                         '(tools/install.sh does it when nvcc is found)')
        else:
            lines.append(f'ok   {name}: CPU kernels only (no GPU visible)')
    return ok, lines


def probe(env: Optional[Mapping[str, str]] = None) -> BuildEnv:
    """The real environment: variables, nvcc, and torch's CUDA build and visible GPUs."""
    import torch
    env = dict(os.environ if env is None else env)
    nvcc = find_nvcc(env)
    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
    return BuildEnv(env=env, torch_version=torch.__version__.split('+')[0],
                    torch_cuda=torch.version.cuda, gpus=gpus, nvcc=nvcc,
                    nvcc_version=nvcc_release(nvcc) if nvcc else None,
                    cuda_home=find_cuda_home(env, nvcc))


def _shell(assignments: Mapping[str, object]) -> str:
    import shlex
    lines = []
    for name, value in assignments.items():
        if isinstance(value, (list, tuple)):
            lines.append(f'{name}=({" ".join(shlex.quote(str(v)) for v in value)})')
        else:
            lines.append(f'{name}={shlex.quote(str(value))}')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python build_config.py mmcv-shell|ops``: the plans for tools/install.sh, as shell
    assignments (``eval``-able) or a one-line description of this package's op build."""
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('what', choices=['mmcv-shell', 'ops'])
    args = parser.parse_args(argv)
    be = probe()
    try:
        if args.what == 'ops':
            print(f'torch={be.torch_version} {plan_cuda(be).describe()}')
        else:
            m = plan_mmcv(be)
            print(_shell({'MMCV_CACHE_KEY': m.cache_key, 'MMCV_LEGACY_KEYS': m.legacy_keys,
                          'MMCV_BUILD_ENV': [f'{k}={v}' for k, v in m.env.items()],
                          'MMCV_WITH_CUDA': int(m.with_cuda), 'MMCV_REASON': m.reason}))
    except BuildConfigError as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
