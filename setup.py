"""Install mmvit_hybrid. The custom ops under mmvit_hybrid/ops/csrc are compiled with torch's
cpp_extension when present (CUDA when available or FORCE_CUDA=1); MMVIT_HYBRID_WITH_OPS=0 skips them."""
import glob
import os

from setuptools import find_packages, setup


def get_version():
    scope = {}
    with open(os.path.join('mmvit_hybrid', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def get_extensions():
    """C++/CUDA extension built from mmvit_hybrid/ops/csrc, if that tree has sources."""
    if os.getenv('MMVIT_HYBRID_WITH_OPS', '1') == '0':
        return [], {}
    sources = sorted(glob.glob('mmvit_hybrid/ops/csrc/**/*.cpp', recursive=True))
    if not sources:
        return [], {}
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
    extra_compile_args = {'cxx': ['-O3', '-std=c++17', '-fopenmp']}
    define_macros = []
    cuda_sources = sorted(glob.glob('mmvit_hybrid/ops/csrc/**/*.cu', recursive=True))
    if (torch.cuda.is_available() or os.getenv('FORCE_CUDA', '0') == '1') and cuda_sources:
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
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'benchmarks')),
    python_requires='>=3.8',
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require={'tests': read_requirements('requirements/tests.txt'),
                    'deploy': read_requirements('requirements/deploy.txt')},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False)
