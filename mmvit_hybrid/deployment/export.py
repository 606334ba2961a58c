"""ONNX export of this package's models: mmpretrain classifiers (logits), mmseg segmentors (logits
at the input size, as ``encode_decode``) and, for mmdet detectors, the backbone + neck feature
pyramid. Used by ``tools/deployment/pytorch2onnx.py``; onnx/onnxruntime are imported lazily.

The exported graph takes the *preprocessed* image (normalised, RGB/BGR as the config's
``data_preprocessor``), shape (B, 3, H, W); the normalisation is written next to the model
(``FILE.json``) for the runtime to apply.

Each backbone names its exporter (``onnx_exporter``, for ``exporter='auto'``) and the smallest input
an export of it is valid for (``min_export_size``); docs/deployment.md lists what was measured.
"""
import json
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

#: the model kind of each supported default_scope
SCOPES = {'mmpretrain': 'classifier', 'mmseg': 'segmentor', 'mmdet': 'detector'}
#: opsets the exporters are run with here
OPSETS = {'torchscript': (13, 20), 'dynamo': (18, 23)}
DEFAULT_OPSET = 18

class ExportError(ValueError):
    """A user-facing export problem (bad config, checkpoint, shape or model type)."""


def log(msg: str) -> None:
    print(f'[pytorch2onnx] {msg}', flush=True)


# --------------------------------------------------------------------------------------------- model
def load_config(path: str, cfg_options: Optional[dict] = None):
    """The mmengine Config of ``path``, with a clear error for a missing or unreadable file."""
    from mmengine.config import Config
    if not osp.isfile(path):
        raise ExportError(f'config file {path!r} does not exist')
    try:
        cfg = Config.fromfile(path)
    except Exception as err:  # noqa: BLE001  (syntax errors, missing _base_ files, ...)
        raise ExportError(f'cannot read config {path!r}: {type(err).__name__}: {err}') from err
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ExportError(f'config {path!r} defines no `model`')
    return cfg


def build_model(cfg, config_path: str = '') -> Tuple[nn.Module, str]:
    """Build ``cfg.model`` in its default scope, pretrained loading stripped, SyncBN -> BN, eval.

    Returns:
        tuple: (model, kind), kind one of ``'classifier'``, ``'segmentor'``, ``'detector'``.
    """
    import importlib

    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    import mmvit_hybrid  # noqa: F401  (registers the package's modules)
    from mmvit_hybrid.utils.config_utils import strip_pretrained

    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ExportError(f'unsupported model type: config {config_path!r} has default_scope {scope!r}; '
                          f'the exporter handles {sorted(SCOPES)} (classifiers, segmentors, detectors)')
    model_cfg = cfg.model.copy()
    strip_pretrained(model_cfg)
    if scope == 'mmpretrain' and 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
        model_cfg['data_preprocessor'] = cfg.data_preprocessor
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    try:
        model = registry.build(model_cfg)
    except KeyError as err:
        raise ExportError(f'unsupported model type in {config_path!r}: {err}') from err
    kind = SCOPES[scope]
    _check_kind(model, kind, config_path)
    return revert_sync_batchnorm(model).eval(), kind


def _check_kind(model: nn.Module, kind: str, config_path: str) -> None:
    name = type(model).__name__
    ok = {
        'classifier': lambda m: hasattr(m, 'backbone') and hasattr(m, 'head') and hasattr(m, 'extract_feat'),
        'segmentor': lambda m: hasattr(m, 'encode_decode') and hasattr(m, 'decode_head'),
        'detector': lambda m: hasattr(m, 'backbone') and getattr(m, 'with_neck', False),
    }[kind](model)
    if not ok:
        what = {'classifier': 'an ImageClassifier with a head', 'segmentor': 'an EncoderDecoder segmentor',
                'detector': 'a detector with backbone and neck'}[kind]
        raise ExportError(f'unsupported model type {name} in {config_path!r}: the exporter takes {what} '
                          f'for this scope (classifier logits, segmentor encode_decode logits, detector '
                          'backbone+neck features)')


def load_checkpoint(model: nn.Module, checkpoint: str) -> None:
    """Load a runner (``{'meta', 'state_dict', ...}``) or plain state-dict checkpoint strictly; a
    checkpoint of another model gets an error with the differing keys and shapes."""
    from mmengine.runner import CheckpointLoader

    from mmvit_hybrid.models.backbones.base_backbone import third_party_format

    if not osp.isfile(checkpoint):
        raise ExportError(f'checkpoint file {checkpoint!r} does not exist')
    try:
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    except Exception as err:  # noqa: BLE001  (corrupt file, pickle refusal, ...)
        raise ExportError(f'cannot load checkpoint {checkpoint!r}: {type(err).__name__}: {err}') from err
    state = ckpt.get('state_dict', ckpt.get('model', ckpt)) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f'checkpoint {checkpoint!r} holds no state dict')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}'
                  for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        backbone = getattr(model, 'backbone', None)
        known = third_party_format(list(state))
        what = f' It looks like {known[0]}: convert it with {known[1]}.' if known else ''
        raise ExportError(
            f'checkpoint {checkpoint!r} is not a checkpoint of this model ({type(model).__name__} with '
            f'{type(backbone).__name__} backbone): {len(missing)} missing keys (e.g. {missing[:3]}), '
            f'{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), {len(mismatched)} shape mismatches '
            f'(e.g. {mismatched[:2]}). Pass the config the checkpoint was trained with.{what}')
    model.load_state_dict(state, strict=True)


def min_input_size(model: nn.Module, dynamic: bool) -> int:
    """The smallest H and W the exported model is valid for: the backbone's ``min_export_size``
    (32 for a backbone from outside this package).

    Args:
        model (nn.Module): A built classifier, segmentor or detector.
        dynamic (bool): Whether H and W stay dynamic.
    """
    backbone = getattr(model, 'backbone', model)
    return backbone.min_export_size(dynamic) if hasattr(backbone, 'min_export_size') else 32


class ExportWrapper(nn.Module):
    """The traced forward: classifier logits, segmentor logits at the input size, or the
    detector's backbone + neck features.

    Args:
        model (nn.Module): A built classifier, segmentor or detector.
        kind (str): ``'classifier'``, ``'segmentor'`` or ``'detector'``.
    """

    def __init__(self, model: nn.Module, kind: str):
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, x: torch.Tensor):
        if self.kind == 'classifier':
            return self.model(x, mode='tensor')  # (B, num_classes)
        if self.kind == 'segmentor':
            from mmseg.models.utils import resize
            head = self.model.decode_head
            # encode_decode without the image metas: the logits resized to the input size
            return resize(head(self.model.extract_feat(x)), size=x.shape[2:], mode='bilinear',
                          align_corners=head.align_corners)  # (B, num_classes, H, W)
        return tuple(self.model.extract_feat(x))  # (B, C, H / s, W / s) per level

    def output_names(self, outputs) -> List[str]:
        """``logits``, ``seg_logits``, or ``p<k>`` per pyramid level of stride 2^k."""
        if self.kind == 'classifier':
            return ['logits']
        if self.kind == 'segmentor':
            return ['seg_logits']
        return [f'p{round(torch.log2(torch.tensor(self._stride(o))).item())}' for o in outputs]

    def _stride(self, out):
        return self._input_hw[0] / out.shape[-2]


# -------------------------------------------------------------------------------------------- export
def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def onnx_io_shapes(path: str) -> Dict[str, list]:
    """{name: dims} of the graph inputs and outputs (symbolic dims as their names)."""
    import onnx
    graph = onnx.load(path, load_external_data=False).graph
    return {v.name: _dims(v) for v in list(graph.input) + list(graph.output)}


def choose_exporter(model: nn.Module, exporter: str) -> Tuple[str, str]:
    """(exporter, reason) for ``exporter`` in ``'auto'``, ``'dynamo'``, ``'torchscript'``."""
    if exporter != 'auto':
        return exporter, 'chosen with --exporter'
    backbone = getattr(model, 'backbone', model)
    name = type(backbone).__name__
    return getattr(backbone, 'onnx_exporter', ('dynamo', f"{name} is not one of this package's backbones: torch's default"))


def capture_program(wrapper: nn.Module, x: torch.Tensor, dynamic_shapes, name: str):
    """``torch.export.export`` of the wrapper with exactly the given dynamic dims, for the dynamo
    exporter.

    ``torch.onnx.export(model, dynamo=True)`` captures the graph itself and, when the dims cannot
    stay fully dynamic (a guard it cannot prove for every H, W), silently retries with the dims
    that ``torch.export`` suggests, e.g. ``height = 32 * _height``: the ONNX graph is then valid
    for multiples of 32 only and computes wrong shapes elsewhere. Capturing here first turns that
    into an error. Same settings as torch.onnx's non-strict capture (``backed_size_oblivious``),
    and shape relations that hold for every size but that its solver cannot prove (e.g. VOLO's
    ``ceil(H / 2) == (H - 1) // 2 + 1``) are kept as run-time assertions instead of restricting
    the dims (``prefer_deferred_runtime_asserts_over_guards``); the tests run every family at a
    second size with odd feature maps.
    """
    with torch.fx.experimental._config.patch(backed_size_oblivious=True):
        try:
            return torch.export.export(wrapper, (x, ), dynamic_shapes=dynamic_shapes, strict=False,
                                       prefer_deferred_runtime_asserts_over_guards=True)
        except torch._dynamo.exc.UserError as err:
            if dynamic_shapes is None:
                raise
            raise ExportError(
                f'the dynamo exporter cannot keep H and W dynamic for this {name} model: torch.export '
                f'would restrict them ({str(err).splitlines()[0]} ...; it suggests: '
                f'{" ".join(line.strip() for line in str(err).splitlines() if "Dim(" in line or "*_" in line)}). '
                'Use --exporter torchscript, or export without --dynamic-shape') from err


def export(model: nn.Module, kind: str, shape: Sequence[int], out: str, opset: int = DEFAULT_OPSET,
           dynamic: bool = False, exporter: str = 'auto', batch: int = 1) -> Dict:
    """Export ``model`` to ``out`` and write ``out``'s sidecar ``.json``.

    Args:
        model (nn.Module): Built model (eval), weights loaded.
        kind (str): ``'classifier'``, ``'segmentor'`` or ``'detector'``.
        shape (Sequence[int]): (H, W) of the example input.
        out (str): Output ``.onnx`` path.
        opset (int): ai.onnx opset. Defaults to 18.
        dynamic (bool): Dynamic H and W. Defaults to False.
        exporter (str): ``'auto'`` (the backbone's ``onnx_exporter``), ``'dynamo'`` or ``'torchscript'``.
        batch (int): Batch size of the (fixed) batch axis. Defaults to 1.

    Returns:
        dict: exporter, opset, input/output names, PyTorch output shapes, ONNX io dims, min size.
    """
    from .hooks import export_mode
    from .outlook_onnx import dynamo_translation_table, register_torchscript_symbolic

    h, w = shape
    exporter, reason = choose_exporter(model, exporter)
    lo, hi = OPSETS[exporter]
    if not lo <= opset <= hi:
        raise ExportError(f'--opset {opset} is outside what the {exporter} exporter is run with here ({lo}..{hi})')
    min_size = min_input_size(model, dynamic)
    if min(h, w) < min_size:
        name = type(getattr(model, 'backbone', model)).__name__
        raise ExportError(f'--shape {h} {w} is below the minimum input size of this {name} export '
                          f'({min_size}x{min_size}{", dynamic H/W" if dynamic else ""}); use a larger shape')
    wrapper = ExportWrapper(model, kind).eval()
    wrapper._input_hw = (h, w)
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = wrapper(x)
    outputs = outputs if isinstance(outputs, tuple) else (outputs, )
    names = wrapper.output_names(outputs)
    log(f'PyTorch outputs at {batch}x3x{h}x{w}: ' + ', '.join(f'{n} {tuple(o.shape)}' for n, o in zip(names, outputs)))
    log(f'exporting with the {exporter} exporter ({reason}), opset {opset}, '
        f'{"dynamic H/W (>= %d)" % min_size if dynamic else "static shape"} -> {out}')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with export_mode(wrapper), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='You are using the legacy TorchScript-based ONNX export')
        if exporter == 'torchscript':
            register_torchscript_symbolic(opset)
            axes = {}
            if dynamic:
                axes['input'] = {2: 'height', 3: 'width'}
                for n, o in zip(names, outputs):
                    if o.dim() == 4:
                        axes[n] = {2: f'{n}_height', 3: f'{n}_width'}
            torch.onnx.export(wrapper, (x, ), out, dynamo=False, opset_version=opset, input_names=['input'],
                              output_names=names, dynamic_axes=axes or None)
        else:
            dynamic_shapes = None
            if dynamic:
                dim = torch.export.Dim
                dynamic_shapes = ({2: dim('height', min=min_size), 3: dim('width', min=min_size)}, )
            ep = capture_program(wrapper, x, dynamic_shapes, type(getattr(model, 'backbone', model)).__name__)
            program = torch.onnx.export(ep, (x, ), dynamo=True, opset_version=opset, input_names=['input'],
                                        output_names=names, custom_translation_table=dynamo_translation_table(opset),
                                        verbose=False)
            program.save(out, external_data=False)
    io = onnx_io_shapes(out)
    info = dict(exporter=exporter, exporter_reason=reason, opset=opset, dynamic=dynamic, min_input_size=min_size,
                input_name='input', input_shape=[batch, 3, h, w], output_names=names,
                pytorch_output_shapes={n: list(o.shape) for n, o in zip(names, outputs)}, onnx_io=io,
                preprocess=_preprocess(model))
    with open(osp.splitext(out)[0] + '.json', 'w') as f:
        json.dump(info, f, indent=1)
    for n in names:
        log(f'output {n}: ONNX dims {io[n]}')
    return info


def _preprocess(model: nn.Module) -> Dict:
    """The normalisation the exported graph expects to have been applied (from the data
    preprocessor): mean, std (per channel, of the 0-255 image) and the channel order swap."""
    pre = getattr(model, 'data_preprocessor', None)
    info = {}
    for key in ('mean', 'std'):
        value = getattr(pre, key, None)
        if isinstance(value, torch.Tensor):
            info[key] = value.flatten().tolist()
    flag = getattr(pre, '_channel_conversion', None)
    if flag is not None:
        info['bgr_to_rgb'] = bool(flag)
    return info


def run_onnxruntime(path: str, x: torch.Tensor, threads: int = 1) -> List:
    """Run ``path`` on CPU with onnxruntime: list of numpy outputs."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})
