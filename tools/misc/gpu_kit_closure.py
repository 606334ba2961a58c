"""Downloads the wheels the lent GPU machine lacks for the OpenMMLab stack (used by
tools/build_gpu_kit.sh): the requested distributions, then, read from each wheel's METADATA
(``Requires-Dist`` whose markers hold for CPython 3.12 on x86-64 Linux, no extras), every
requirement that is neither in the kit already nor among the packages that machine has
(:data:`GPU_MACHINE_HAS`, from the device notes' package list of the 'cuda' image), recursively.

Every download is ``pip download --no-deps --only-binary=:all:`` for cp312 manylinux x86-64, so
the kit holds exactly one wheel per distribution and nothing that machine already has (two
versions of a package would stop ``pip install --no-index``).

Usage::

    python tools/misc/gpu_kit_closure.py --wheels DIR [--report FILE] SPEC [SPEC ...]

``SPEC`` is a requirement (``mmdet==3.3.0``). Wheels already in ``DIR`` (e.g. the mmcv wheel built
here) count as in the kit and their requirements are followed too. Exit status 1 when a download
fails or a pinned requirement conflicts with the kit's wheel.
"""
import argparse
import email.parser
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

# The 'cuda' image's Python packages, as the device notes list them (read 2026-11-17); Python 3.12.3.
GPU_MACHINE_HAS = frozenset(canonicalize_name(n) for n in '''
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
'''.split())
# Declared requirements that the machine satisfies under another distribution name (same module):
# mmcv and mmengine declare opencv-python; the image has opencv-python-headless (cv2).
SATISFIED_BY = {'opencv-python': 'opencv-python-headless'}
# pip matches manylinux_2_N tags exactly; the machine (Ubuntu 24.04, glibc 2.39) runs any of these.
PLATFORMS = ['manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux_2_24_x86_64',
             'manylinux_2_27_x86_64', 'manylinux_2_28_x86_64', 'manylinux_2_31_x86_64',
             'manylinux_2_34_x86_64', 'manylinux_2_35_x86_64', 'manylinux_2_39_x86_64',
             'manylinux1_x86_64']
MARKER_ENV = {**default_environment(), 'python_version': '3.12', 'python_full_version': '3.12.3',
              'implementation_name': 'cpython', 'platform_python_implementation': 'CPython',
              'sys_platform': 'linux', 'platform_system': 'Linux', 'platform_machine': 'x86_64',
              'os_name': 'posix', 'extra': ''}


def kit_wheels(folder: Path) -> dict:
    """{canonical name: wheel path} of the wheels in folder."""
    return {canonicalize_name(parse_wheel_filename(p.name)[0]): p for p in sorted(folder.glob('*.whl'))}


def requirements(wheel: Path) -> list:
    """The wheel's Requires-Dist that apply on the machine (CPython 3.12, Linux x86-64, no extras)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if re.fullmatch(r'[^/]+\.dist-info/METADATA', n))
        msg = email.parser.Parser().parsestr(z.read(meta).decode())
    reqs = [Requirement(r) for r in msg.get_all('Requires-Dist') or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(MARKER_ENV)]


def download(spec: str, folder: Path, pip: list) -> None:
    cmd = [*pip, 'download', '-q', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
           '--implementation', 'cp', '--abi', 'cp312', '--abi', 'abi3', '--abi', 'none',
           *[a for p in PLATFORMS for a in ('--platform', p)], '-d', str(folder), spec]
    subprocess.run(cmd, check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('specs', nargs='+', help='top-level requirements, e.g. mmdet==3.3.0')
    parser.add_argument('--wheels', type=Path, required=True, help='the kit folder')
    parser.add_argument('--report', type=Path, help='also write the closure (one line a wheel) here')
    args = parser.parse_args(argv)
    args.wheels.mkdir(parents=True, exist_ok=True)
    # the machine's pip config (find-links of CPU wheels, version caps) must not pick the wheels
    env = {k: v for k, v in os.environ.items() if k != 'PIP_FIND_LINKS'}
    env['PIP_CONFIG_FILE'] = os.devnull
    os.environ.clear()
    os.environ.update(env)
    pip = [sys.executable, '-m', 'pip']

    pending = [Requirement(s) for s in args.specs]
    why = {canonicalize_name(r.name): 'requested' for r in pending}
    on_machine, problems = {}, []
    for name, wheel in kit_wheels(args.wheels).items():  # pre-placed wheels (mmcv): follow theirs
        pending += [r for r in requirements(wheel)]
        why.setdefault(name, 'pre-placed')
    while pending:
        req = pending.pop(0)
        name = canonicalize_name(req.name)
        have = SATISFIED_BY.get(name, name)
        if have in GPU_MACHINE_HAS:
            on_machine.setdefault(have, str(req))
            continue
        kit = kit_wheels(args.wheels)
        if name not in kit:
            print(f'[gpu_kit] downloading {req} ({why.get(name, "a requirement")})', flush=True)
            try:
                download(f'{req.name}{req.specifier}', args.wheels, pip)
            except subprocess.CalledProcessError as exc:
                problems.append(f'{req}: pip download failed ({exc.returncode})')
                continue
            kit = kit_wheels(args.wheels)
            if name not in kit:
                problems.append(f'{req}: no wheel after download')
                continue
            for sub in requirements(kit[name]):
                why.setdefault(canonicalize_name(sub.name), f'required by {name}: {sub}')
                pending.append(sub)
        version = parse_wheel_filename(kit[name].name)[1]
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(f'{req} conflicts with the kit\'s {kit[name].name}')

    kit = kit_wheels(args.wheels)
    lines = [f'{p.name}\t{p.stat().st_size}\t{why.get(n, "")}' for n, p in kit.items()]
    total = sum(p.stat().st_size for p in kit.values())
    print('[gpu_kit] kit wheels:\n  ' + '\n  '.join(lines))
    print(f'[gpu_kit] {len(kit)} wheels, {total / 2**20:.1f} MiB; requirements the machine meets: '
          + ', '.join(f'{v}' for v in sorted(on_machine.values())))
    if args.report:
        args.report.write_text('# wheel\tbytes\twhy\n' + '\n'.join(lines) + '\n# on the machine: '
                               + ', '.join(sorted(on_machine.values())) + '\n')
    for p in problems:
        print(f'[gpu_kit] ERROR: {p}', file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
