"""Install mmvit_hybrid. The custom ops under mmvit_hybrid/ops/csrc are compiled with torch's
cpp_extension: CUDA kernels when a GPU and nvcc are present or FORCE_CUDA=1 (rules in
mmvit_hybrid/ops/build_config.py), CPU kernels otherwise; MMVIT_HYBRID_WITH_OPS=0 skips them.

The extension's ABI is tied to the torch it is compiled against, so build with the torch that is
installed: ``pip install --no-build-isolation -e .`` (or ``pip wheel --no-build-isolation .``).
pyproject.toml does not list torch as a build requirement; in an isolated build (plain
``pip install .``) torch cannot be imported, so the package is built without the extension and
the op uses its PyTorch reference (one warning at first use).

The configs and tools are shipped inside the package, under ``mmvit_hybrid/.mim/`` (symbolic links
in the repository, regular files in the wheel), as mmdet/mmseg/mmpretrain ship theirs."""
import glob
import os
import sys

from setuptools import find_packages, setup


def get_version():
    scope = {}
    with open(os.path.join('mmvit_hybrid', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


# Shipped inside the package (mmvit_hybrid/.mim: links to ../../configs, ../../tools and
# ../../model-index.yml); glob follows the directory links and build_py copies the files.
MIM_FILES = ['.mim/model-index.yml', '.mim/configs/**/*.py', '.mim/configs/**/*.yml',
             '.mim/configs/**/*.md', '.mim/tools/**/*.py', '.mim/tools/**/*.sh']


def read_requirements(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def load_build_config():
    """mmvit_hybrid/ops/build_config.py, loaded by path (the package itself needs mmengine)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mmvit_hybrid', 'ops',
                        'build_config.py')
    spec = importlib.util.spec_from_file_location('_mmvit_hybrid_build_config', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def get_extensions():
    """C++/CUDA extension built from mmvit_hybrid/ops/csrc, if that tree has sources.

    CUDA kernels are compiled when ``build_config.plan_cuda`` says so (a GPU and a matching nvcc,
    or FORCE_CUDA=1 with nvcc); otherwise the reason is printed and the CPU kernels are built."""
    if os.getenv('MMVIT_HYBRID_WITH_OPS', '1') == '0':
        return [], {}
    sources = sorted(glob.glob('mmvit_hybrid/ops/csrc/**/*.cpp', recursive=True))
    if not sources:
        return [], {}
    try:
        import torch  # noqa: F401
    except ImportError:  # an isolated build: the user's torch is not visible
        print('[mmvit_hybrid] torch is not importable in this build environment: building without '
              'the compiled op (mmvit_hybrid._ext; the package falls back to its PyTorch '
              'reference). To compile it against your torch: '
              'pip install --no-build-isolation .', file=sys.stderr)
        return [], {}
    cuda_sources = sorted(glob.glob('mmvit_hybrid/ops/csrc/**/*.cu', recursive=True))
    build_config = load_build_config()
    plan = build_config.plan_cuda(build_config.probe())  # raises a clear error if FORCE_CUDA fails
    print(f'[mmvit_hybrid] {"CUDA" if plan.with_cuda else "CPU only"}: {plan.reason}',
          file=sys.stderr)
    for note in plan.notes:
        print(f'[mmvit_hybrid] note: {note}', file=sys.stderr)
    if plan.with_cuda:
        # cpp_extension reads both when it is imported / compiles
        os.environ['CUDA_HOME'] = plan.cuda_home
        os.environ['TORCH_CUDA_ARCH_LIST'] = plan.arch_list
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
    extra_compile_args = {'cxx': ['-O3', '-std=c++17', '-fopenmp']}
    define_macros = []
    if plan.with_cuda and cuda_sources:
        ext_cls = CUDAExtension
        sources += cuda_sources
        define_macros.append(('WITH_CUDA', None))
        extra_compile_args['nvcc'] = ['-O3', '-std=c++17']
    else:
        ext_cls = CppExtension
    ext = ext_cls(
        name='mmvit_hybrid._ext',
        sources=sources,
        include_dirs=[os.path.abspath('mmvit_hybrid/ops/csrc/common')],
        # headers: a change recompiles the sources that include them
        depends=sorted(glob.glob('mmvit_hybrid/ops/csrc/**/*.h', recursive=True)),
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=['-fopenmp'])
    return [ext], {'build_ext': BuildExtension}


ext_modules, cmdclass = get_extensions()

setup(
    name='mmvit_hybrid',
    version=get_version(),
    description='Hybrid CNN/transformer backbones (DS-Net, DMFormer, VOLO, BoTNet) for OpenMMLab',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'benchmarks', 'demo')),
    package_data={'mmvit_hybrid': MIM_FILES},
    python_requires='>=3.8',
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require={'tests': read_requirements('requirements/tests.txt'),
                    'deploy': read_requirements('requirements/deploy.txt')},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False)
