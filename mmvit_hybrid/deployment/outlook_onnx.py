"""ONNX translation of the fused outlook-attention op (``mmvit_hybrid::outlook_attention_forward``)
into standard ONNX operators, for both ``torch.onnx`` exporters.

The op computes ``fold(attn @ unfold(value))`` (:mod:`mmvit_hybrid.ops.outlook_attention`). ONNX
has no unfold, and ``fold`` would be ``Col2Im`` (opset 18), which TensorRT does not implement. The
translation here writes both as ``Gather`` with index tensors computed inside the graph from the
input's H and W, so one exported model serves every input size:

1. unfold: the value map, (B, heads, H*W, d) with one zero row appended, is gathered at the
   index of every (window, position) pair, ``(u*s - p + jy) * W + (w*s - p + jx)`` or the zero
   row where that pixel lies in the padding: (B, heads, Ho*Wo*K*K, d);
2. ``MatMul`` of the (B, heads, Ho*Wo, K*K, K*K) attention with the unfolded values;
3. fold: each output pixel (y, x) receives the contributions of at most ``T = ceil(K / s)`` windows
   per axis (window u covers y when ``0 <= y + p - u*s < K``), so the products, with one zero row
   appended, are gathered at the ``T * T`` candidates of every pixel (the zero row where a
   candidate window does not exist) and summed (``ReduceSum``).

Operators used: Shape, Gather, Range, Add, Sub, Mul, Div (int64, non-negative operands only),
Less, GreaterOrEqual, And, Where, Unsqueeze, Reshape, Concat, Transpose, Pad, MatMul, ReduceSum:
ONNX opset 13 or later (``Unsqueeze``/``ReduceSum`` take their axes as inputs from 13 on),
all of them supported by onnxruntime and TensorRT; no custom domain, no runtime library.

The graph is written once (:func:`build_outlook_attention`) against a small builder interface with
two implementations: :class:`TorchScriptBuilder` (``g.op`` of the TorchScript exporter, registered
by :func:`register_torchscript_symbolic`) and :class:`OnnxScriptBuilder` (onnxscript ops recorded by
the dynamo exporter, :func:`dynamo_translation_table`). onnx/onnxscript are imported only inside
these functions, so the package imports without them.
"""
from typing import Callable, Dict, Sequence

#: the ops this module translates: the compiled op, and the export-only op that stands in for it
#: when the extension is not built (:func:`mmvit_hybrid.ops.outlook_attention.reference_op`)
OP_NAMES = ('mmvit_hybrid::outlook_attention_forward', 'mmvit_hybrid_deploy::outlook_attention')
#: lowest ONNX opset the translation is written for
MIN_OPSET = 13


class TorchScriptBuilder:
    """Emit ONNX nodes through the TorchScript exporter's graph context ``g``.

    Args:
        g: The ``GraphContext`` passed to a symbolic function.
    """

    def __init__(self, g):
        self.g = g

    def const(self, values) -> object:
        """int64 constant: 0-D for an int, 1-D for a sequence."""
        import torch
        return self.g.op('Constant', value_t=torch.tensor(values, dtype=torch.int64))

    def __call__(self, op_type: str, *inputs, **attrs):
        kwargs = {}
        for key, value in attrs.items():
            first = value[0] if isinstance(value, (list, tuple)) else value
            kind = 'i' if isinstance(first, int) else 'f' if isinstance(first, float) else 's'
            kwargs[f'{key}_{kind}'] = value
        return self.g.op(op_type, *inputs, **kwargs)


class OnnxScriptBuilder:
    """Emit ONNX nodes as onnxscript ops (recorded by the dynamo exporter's tracer).

    Args:
        opset_version (int): The ai.onnx opset of the exported model.
    """

    def __init__(self, opset_version: int):
        import onnxscript
        self.opset = onnxscript.values.Opset('', opset_version)

    def const(self, values):
        """int64 constant: 0-D for an int, 1-D for a sequence."""
        if isinstance(values, int):
            return self.opset.Constant(value_int=values)
        return self.opset.Constant(value_ints=list(values))

    def __call__(self, op_type: str, *inputs, **attrs):
        return getattr(self.opset, op_type)(*inputs, **attrs)


def _window_index(b, start, count, length, stride, padding):
    """(count, K) pixel index ``u * s - p + j`` of window u's position j along one axis, and
    whether it lies inside the map [0, length)."""
    u = b('Range', b.const(0), count, b.const(1))  # (count, )
    pos = b('Add', b('Unsqueeze', b('Sub', b('Mul', u, b.const(stride)), b.const(padding)), b.const([1])),
            start)  # (count, 1) + (K, ) -> (count, K)
    inside = b('And', b('GreaterOrEqual', pos, b.const(0)), b('Less', pos, length))
    return pos, inside


def _cover_index(b, length, num_windows, kernel_size, stride, padding, taps):
    """For every pixel y of an axis, its ``taps`` candidate windows ``u = (y + p) // s - t`` and
    the position ``y + p - u * s`` of y in each: (length, taps) each, plus whether the window
    exists and covers y."""
    y = b('Add', b('Range', b.const(0), length, b.const(1)), b.const(padding))  # (length, ): y + p >= 0
    u = b('Sub', b('Unsqueeze', b('Div', y, b.const(stride)), b.const([1])), b.const(list(range(taps))))
    pos = b('Sub', b('Unsqueeze', y, b.const([1])), b('Mul', u, b.const(stride)))  # >= 0 by construction
    valid = b('And', b('And', b('GreaterOrEqual', u, b.const(0)), b('Less', u, num_windows)),
              b('Less', pos, b.const(kernel_size)))
    return u, pos, valid


def _outer(b, rows, cols):
    """(R, K) x (C, K) -> (R, 1, K, 1) and (1, C, 1, K): broadcast to (R, C, K, K)."""
    return b('Unsqueeze', rows, b.const([1, 3])), b('Unsqueeze', cols, b.const([0, 2]))


def build_outlook_attention(b, value, attn, kernel_size: int, padding: int, stride: int):
    """The ONNX graph of ``fold(attn @ unfold(value))`` (see the module docstring).

    Args:
        b: A builder (:class:`TorchScriptBuilder` or :class:`OnnxScriptBuilder`).
        value: (B, C, H, W) graph value.
        attn: (B, heads, Ho, Wo, K*K, K*K) graph value.
        kernel_size (int): Window size K.
        padding (int): Window padding p.
        stride (int): Window stride s.

    Returns:
        The (B, C, H, W) output value.
    """
    K, p, s = kernel_size, padding, stride
    kk, taps = K * K, -(-K // s)
    vshape, ashape = b('Shape', value), b('Shape', attn)
    dim = lambda shape, i: b('Gather', shape, b.const(i), axis=0)  # noqa: E731  0-D
    dim1 = lambda shape, i: b('Gather', shape, b.const([i]), axis=0)  # noqa: E731  1-D
    H, W = dim(vshape, 2), dim(vshape, 3)
    # window counts of unfold(K, p, s): (H + 2p - K) // s + 1 (non-negative: the op checks it)
    Ho = b('Add', b('Div', b('Add', H, b.const(2 * p - K)), b.const(s)), b.const(1))
    Wo = b('Add', b('Div', b('Add', W, b.const(2 * p - K)), b.const(s)), b.const(1))
    HW, N = b('Mul', H, W), b('Mul', Ho, Wo)
    B1, C1, heads1 = dim1(vshape, 0), dim1(vshape, 1), dim1(ashape, 1)
    d1 = b('Div', C1, heads1)
    HW1 = b('Unsqueeze', HW, b.const([0]))
    pad_row = b.const([0, 0, 0, 0, 0, 0, 1, 0])  # one zero row at the end of axis 2 of a 4-D tensor

    # 1. unfold: gather (B, heads, H*W + 1, d) at the (Ho, Wo, K, K) window pixels
    kpos = b.const(list(range(K)))
    rows, rows_in = _window_index(b, kpos, Ho, H, s, p)  # (Ho, K)
    cols, cols_in = _window_index(b, kpos, Wo, W, s, p)  # (Wo, K)
    r, c = _outer(b, rows, cols)
    ri, ci = _outer(b, rows_in, cols_in)
    flat = b('Add', b('Mul', r, W), c)  # (Ho, Wo, K, K): row * W + col
    index = b('Reshape', b('Where', b('And', ri, ci), flat, HW), b.const([-1]))  # (N*K*K, )
    # (B, C, H, W) -> (B, heads, d, H*W) -> (B, heads, H*W, d) -> + zero row -> (B, heads, H*W + 1, d)
    v = b('Reshape', value, b('Concat', B1, heads1, d1, HW1, axis=0))
    v = b('Pad', b('Transpose', v, perm=[0, 1, 3, 2]), pad_row)
    v = b('Gather', v, index, axis=2)  # (B, heads, N*K*K, d)
    v = b('Reshape', v, b('Concat', b.const([0, 0, -1, kk]), d1, axis=0))  # (B, heads, N, K*K, d)

    # 2. attention: (B, heads, Ho, Wo, K*K, K*K) -> (B, heads, N, K*K, K*K) @ (B, heads, N, K*K, d)
    a = b('Reshape', attn, b.const([0, 0, -1, kk, kk]))
    z = b('MatMul', a, v)  # (B, heads, N, K*K, d): window u's contribution to its position i
    z = b('Reshape', z, b('Concat', b.const([0, 0, -1]), d1, axis=0))  # (B, heads, N*K*K, d)
    z = b('Pad', z, pad_row)  # (B, heads, N*K*K + 1, d)

    # 3. fold: every pixel sums the (taps x taps) windows covering it
    uy, iy, vy = _cover_index(b, H, Ho, K, s, p, taps)  # (H, taps)
    ux, ix, vx = _cover_index(b, W, Wo, K, s, p, taps)  # (W, taps)
    uy, ux = _outer(b, uy, ux)
    iy, ix = _outer(b, iy, ix)
    vy, vx = _outer(b, vy, vx)
    window = b('Add', b('Mul', uy, Wo), ux)  # (H, W, taps, taps)
    flat = b('Add', b('Mul', window, b.const(kk)), b('Add', b('Mul', iy, b.const(K)), ix))
    index = b('Reshape', b('Where', b('And', vy, vx), flat, b('Mul', N, b.const(kk))), b.const([-1]))
    out = b('Gather', z, index, axis=2)  # (B, heads, H*W*taps*taps, d)
    out = b('Reshape', out, b('Concat', b.const([0, 0]), HW1, b.const([taps * taps]), d1, axis=0))
    out = b('ReduceSum', out, b.const([3]), keepdims=0)  # (B, heads, H*W, d)
    out = b('Transpose', out, perm=[0, 1, 3, 2])  # (B, heads, d, H*W)
    return b('Reshape', out, b('Concat', B1, C1, dim1(vshape, 2), dim1(vshape, 3), axis=0))  # (B, C, H, W)


def _check_opset(opset_version: int):
    if opset_version < MIN_OPSET:
        raise ValueError(f'outlook attention ONNX translation: needs opset >= {MIN_OPSET}, got {opset_version}')


def register_torchscript_symbolic(opset_version: int) -> None:
    """Register the translation for the TorchScript exporter (``torch.onnx.export(dynamo=False)``).

    Args:
        opset_version (int): The opset the model is exported with (>= 13).
    """
    import torch
    from torch.onnx import symbolic_helper

    _check_opset(opset_version)

    @symbolic_helper.parse_args('v', 'v', 'i', 'i', 'i')
    def symbolic(g, value, attn, kernel_size, padding, stride):
        return build_outlook_attention(TorchScriptBuilder(g), value, attn, kernel_size, padding, stride)

    for name in OP_NAMES:
        torch.onnx.register_custom_op_symbolic(name, symbolic, opset_version)


def dynamo_translation_table(opset_version: int) -> Dict[Callable, Callable]:
    """``custom_translation_table`` entry for the dynamo exporter (``torch.onnx.export(dynamo=True)``).

    Args:
        opset_version (int): The opset the model is exported with.

    Returns:
        dict: ``{op overload: translation}`` for the compiled op (when loaded) and the export-only op.
    """
    import torch

    from mmvit_hybrid.ops.outlook_attention import reference_op

    _check_opset(opset_version)

    def translation(value, attn, kernel_size: int, padding: int, stride: int):
        return build_outlook_attention(OnnxScriptBuilder(opset_version), value, attn, kernel_size, padding,
                                       stride)

    reference_op()  # defines torch.ops.mmvit_hybrid_deploy.outlook_attention
    ops = [torch.ops.mmvit_hybrid_deploy.outlook_attention.default]
    if hasattr(torch.ops.mmvit_hybrid, 'outlook_attention_forward'):
        ops.append(torch.ops.mmvit_hybrid.outlook_attention_forward.default)
    return {op: translation for op in ops}


def onnx_op_types(model_path: str) -> Sequence[str]:
    """Sorted operator types (``domain::type`` outside ai.onnx) of an ONNX file, for checks."""
    import onnx
    model = onnx.load(model_path, load_external_data=False)
    types = {(f'{n.domain}::' if n.domain not in ('', 'ai.onnx') else '') + n.op_type for n in model.graph.node}
    return sorted(types)
