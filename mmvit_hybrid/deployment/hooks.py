"""Export-time hooks: switch the few shape-dependent shortcuts of the backbones to a form that the
ONNX exporters trace for every input size, without changing any result.

Each shortcut below is a Python branch on a shape. ``torch.onnx.export(dynamo=False)`` bakes the
branch taken at the export size into the graph, so other sizes silently take the wrong path (or
fail); ``dynamo=True`` turns the comparison into a guard that specialises the dynamic H/W and the
export fails. The hooks take the general path at every size:

* VOLO ``resized_pos_embed``: at the training grid the embedding is used as is; here it is always
  interpolated (bicubic, ``align_corners=False``, the same call): at an unchanged size the bicubic
  weights are exactly (0, 1, 0, 0), so the result is bit-identical.
* BoTNet ``RelPosAttention`` (``rel_pos_attention.py``, engineer E's file, not edited here): the
  explicit ``'einsum'`` implementation (relative -> absolute offsets by a gather whose index comes
  from ``torch.arange(H)``; the ``'matmul'`` path uses ``as_strided`` views whose strides would be
  baked, and the dynamo export of them reads out of range); the relative tables are always
  resampled (linear, ``align_corners=True`` onto the same length is the identity); the qkv
  projection is the plain ``Conv2d`` (oneDNN disabled while exporting: ``mkldnn_convolution`` has
  no ONNX translation); the strided block pools with ``F.avg_pool2d(ceil_mode=True)``.
* The fused outlook-attention op: when the compiled ``mmvit_hybrid._ext`` is not loaded, VOLO runs
  the unfold/fold reference, and ``fold`` would export as ``Col2Im``. The hook routes the outlook
  layers through an export-only op (``mmvit_hybrid_deploy::outlook_attention``, the reference as its
  kernel) that has the same gather + matmul translation as the compiled op.
* SyncBN (the segmentation configs) becomes BN (mmengine's ``revert_sync_batchnorm``), done by the
  model loader.
"""
import contextlib
from unittest import mock

import torch
import torch.nn.functional as F

EXPORT_OP_NAMESPACE = 'mmvit_hybrid_deploy'
_export_op = None


def export_outlook_op():
    """The export-only outlook-attention op, ``torch.ops.mmvit_hybrid_deploy.outlook_attention``
    (defined on first use; the unfold/fold reference is its kernel)."""
    global _export_op
    if _export_op is None:
        from mmvit_hybrid.ops import outlook_attention_reference

        @torch.library.custom_op(f'{EXPORT_OP_NAMESPACE}::outlook_attention', mutates_args=())
        def outlook_attention(value: torch.Tensor, attn: torch.Tensor, kernel_size: int, padding: int,
                              stride: int) -> torch.Tensor:
            return outlook_attention_reference(value, attn, kernel_size, padding, stride)

        @outlook_attention.register_fake
        def _(value, attn, kernel_size, padding, stride):
            return torch.empty_like(value)

        _export_op = outlook_attention
    return _export_op


def _always_resample(table: torch.Tensor, length: int) -> torch.Tensor:
    """``resize_rel_pos`` without its shape shortcuts: (L, d) -> (length, d), linear over the
    offsets with ``align_corners=True`` (the identity when ``length == L``)."""
    return F.interpolate(table.t().unsqueeze(0), size=length, mode='linear', align_corners=True)[0].t()


def _always_resized_pos_embed(backbone):
    def resized_pos_embed(hw):
        pos = backbone.pos_embed.permute(0, 3, 1, 2)  # (1, h0, w0, C) -> (1, C, h0, w0)
        pos = F.interpolate(pos, size=tuple(hw), mode='bicubic', align_corners=False)
        return pos.permute(0, 2, 3, 1)  # (1, C, h, w) -> (1, h, w, C)
    return resized_pos_embed


@contextlib.contextmanager
def export_mode(model: torch.nn.Module):
    """Apply the hooks of the module docstring to ``model`` while the context is open.

    Args:
        model (nn.Module): The model (or wrapper) about to be exported.
    """
    from mmvit_hybrid.models.backbones import VOLO
    from mmvit_hybrid.models.layers import RelPosAttention, outlooker, rel_pos_attention
    from mmvit_hybrid.ops import ext_available

    with contextlib.ExitStack() as stack:
        modules = list(model.modules())
        for m in modules:
            if isinstance(m, VOLO):
                stack.enter_context(mock.patch.object(m, 'resized_pos_embed', _always_resized_pos_embed(m)))
            elif isinstance(m, RelPosAttention):
                # the explicit path: 'einsum' in the old layer, 'matmul' in the rewritten one
                impl = 'einsum' if 'einsum' in RelPosAttention.attn_impls else 'matmul'
                stack.enter_context(mock.patch.object(m, 'attn_impl', impl))
        if any(isinstance(m, RelPosAttention) for m in modules) and 'einsum' in RelPosAttention.attn_impls:
            stack.enter_context(mock.patch.object(rel_pos_attention, 'resize_rel_pos', _always_resample))
            stack.enter_context(mock.patch.object(
                rel_pos_attention, 'avg_pool_2x2_ceil', lambda x: F.avg_pool2d(x, 2, 2, ceil_mode=True)))
            stack.enter_context(torch.backends.mkldnn.flags(enabled=False))
        if not ext_available() and any(isinstance(m, outlooker.OutlookAttention) for m in modules):
            stack.enter_context(mock.patch.object(outlooker, 'outlook_attention', export_outlook_op()))
        yield model
