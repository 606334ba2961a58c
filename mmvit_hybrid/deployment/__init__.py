"""ONNX deployment: export of classifiers, segmentors and detector feature pyramids
(:mod:`.export`), the ONNX translation of the fused outlook-attention op (:mod:`.outlook_onnx`) and
the export-time hooks for third-party layers (:mod:`.hooks`). onnx, onnxscript and onnxruntime
(``pip install -r requirements/deploy.txt`` or the ``deploy`` extra) are imported only when used,
so this package imports without them."""
from .export import ExportError, ExportWrapper, build_model, export, load_checkpoint, load_config
from .outlook_onnx import build_outlook_attention, dynamo_translation_table, register_torchscript_symbolic

__all__ = [
    'ExportError', 'ExportWrapper', 'build_model', 'build_outlook_attention',
    'dynamo_translation_table', 'export', 'load_checkpoint', 'load_config', 'register_torchscript_symbolic'
]
