"""PaddleClas's own DS-Net (``ppcls/arch/backbone/model_zoo/dsnet.py`` of the ``paddleclas`` wheel)
as a test oracle, imported without running any ``paddleclas`` ``__init__``.

The package ``__init__`` files import most of PaddleClas (and dependencies the test environment
does not have). ``dsnet.py`` itself needs only ``paddle``, its sibling ``vision_transformer.py``
and ``....utils.save_load`` (relative imports). :func:`load_dsnet_module` registers the four
directories on that path as bare namespace packages under a private name (``_ppcls_reference``,
so a real ``paddleclas`` import elsewhere is not shadowed) and imports ``dsnet.py`` through them:
only ``dsnet.py``, ``vision_transformer.py``, ``utils/save_load.py`` and what those import
(``utils/logger.py``, ``utils/download.py``) run.
"""
import functools
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT_NAME = '_ppcls_reference'
# the packages between ppcls/ and dsnet.py (relative to ppcls/), and utils/ for save_load
STUB_PACKAGES = ('', 'arch', 'arch.backbone', 'arch.backbone.model_zoo', 'utils')


def ppcls_dir() -> Path:
    """``paddleclas/ppcls`` of the installed wheel, found without importing it. ``make install``
    installs it (requirements/reference_nodeps.txt), so its absence is an error, not a skip."""
    spec = importlib.util.find_spec('paddleclas')
    if spec is None or not spec.submodule_search_locations:
        pytest.fail('paddleclas is not installed (make install: requirements/reference_nodeps.txt, --no-deps)')
    path = Path(next(iter(spec.submodule_search_locations))) / 'ppcls'
    if not (path / 'arch/backbone/model_zoo/dsnet.py').is_file():
        pytest.fail(f'{path} has no arch/backbone/model_zoo/dsnet.py')
    return path


@functools.lru_cache(maxsize=None)
def load_dsnet_module():
    """Import PaddleClas's ``dsnet.py`` (``DSNet_tiny``/``_small``/``_base``, ``MixVisionTransformer``)."""
    importlib.import_module('paddle')  # requirements/reference.txt; ImportError if missing
    base = ppcls_dir()
    for rel in STUB_PACKAGES:
        name = f'{ROOT_NAME}.{rel}' if rel else ROOT_NAME
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(base.joinpath(*rel.split('.')) if rel else base)]
            package.__package__ = name
            sys.modules[name] = package
    return importlib.import_module(f'{ROOT_NAME}.arch.backbone.model_zoo.dsnet')


def build_reference(arch: str, img_size: int = 224, seed: int = 0):
    """The reference DSNet_<arch> in eval mode with every tensor random.

    Every tensor is drawn (numpy generator of ``seed``): conv and Linear weights ``N(0, 0.5 / sqrt(fan_in))``,
    biases ``N(0, 0.05)``, norm scales ``U(0.8, 1.2)``, BatchNorm means ``N(0, 0.05)`` and
    variances ``U(0.8, 1.2)``. Unlike the reference init (zero biases, unit norms, identity BN
    statistics), a swapped or untransposed tensor then shows in the logits; unlike larger random
    values, activations stay bounded (stage 4 within about 10-100 on unit-normal images), so float32
    rounding cannot mask or fake a difference.
    """
    import paddle
    dsnet = load_dsnet_module()
    paddle.seed(seed)
    model = getattr(dsnet, f'DSNet_{arch}')(img_size=img_size)
    rng = np.random.default_rng(seed)
    for name, tensor in model.state_dict().items():
        shape, leaf = tuple(tensor.shape), name.rsplit('.', 1)[-1]
        if leaf == '_variance' or (leaf == 'weight' and len(shape) == 1):  # variances, norm scales
            value = rng.uniform(0.8, 1.2, shape)
        elif leaf in ('bias', '_mean'):
            value = 0.05 * rng.standard_normal(shape, dtype=np.float32)
        elif len(shape) == 4:  # conv (out, in / groups, kh, kw)
            value = rng.standard_normal(shape, dtype=np.float32) * (0.5 / np.sqrt(np.prod(shape[1:])))
        elif len(shape) == 2:  # Paddle Linear (in, out)
            value = rng.standard_normal(shape, dtype=np.float32) * (0.5 / np.sqrt(shape[0]))
        else:
            raise AssertionError(f'unexpected reference tensor {name} {shape}')
        tensor.set_value(value.astype(np.float32))
    model.eval()
    return model


def reference_logits(model, images: np.ndarray) -> np.ndarray:
    import paddle
    with paddle.no_grad():
        return model(paddle.to_tensor(images)).numpy()
