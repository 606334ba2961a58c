"""Outlook attention (VOLO, Yuan et al., arXiv 2106.13112), the part between the value projection
and the output projection: ``fold(attn @ unfold(value))``.

For a value map ``v`` of shape (B, C, H, W) split into ``h`` heads of ``d = C / h`` channels, and
attention weights ``a`` of shape (B, h, Ho, Wo, K*K, K*K) (one K*K x K*K matrix per head and
window; rows index the window position written to, columns the position read from), window
``(u, w)`` covers the pixels ``(u * s - p + ky, w * s - p + kx)`` for ``0 <= ky, kx < K``, and::

    out[b, c, y, x] = sum over windows (u, w) and positions i = (iy, ix) with
                      (u * s - p + iy, w * s - p + ix) == (y, x) of
                      sum_j a[b, c // d, u, w, i, j] * v[b, c, u * s - p + jy, w * s - p + jx]

with zeros read outside the map. Because windows overlap, every output pixel gathers a
(2K - 1) x (2K - 1) neighbourhood (``sail-sg/volo#7``).

:func:`outlook_attention` runs the compiled kernels of ``mmvit_hybrid._ext`` (CPU, and CUDA when
built with it; ``mmvit_hybrid/ops/csrc``). They compute each output pixel from its neighbourhood
directly, never materialising the unfolded value tensor (2.25x the value map for K=3, s=2), and
save only ``value`` and ``attn`` for backward. :func:`outlook_attention_reference` is the
unfold/fold formulation of timm's ``OutlookAttention``; it is used, with one warning, when the
extension is not built.

Mixed precision: under ``torch.autocast`` (CPU or CUDA) both inputs are cast to the autocast
dtype, as autocast does for ``matmul`` (timm's ``attn @ v``). On CUDA this is what makes ``--amp``
work: ``nn.Linear`` gives a float16 ``value`` while ``softmax`` is autocast to float32, so ``attn``
arrives in float32. The rule is registered for the ops' Autocast dispatch keys (so direct
``torch.ops.mmvit_hybrid.*`` calls and ``torch.compile`` get it too) and applied by
:func:`outlook_attention` itself before it checks the inputs (so the reference fallback gets it).
Outside autocast, mixed dtypes and devices are errors.
"""
import math
import warnings

import torch
import torch.nn.functional as F

try:
    from mmvit_hybrid import _ext  # noqa: F401  (registers torch.ops.mmvit_hybrid.*)
    _EXT_ERROR = None
except (ImportError, OSError) as e:  # not built, or built against another torch
    _ext = None
    _EXT_ERROR = f'{type(e).__name__}: {e}'

_EXT_AVAILABLE = _ext is not None
_BUILD_HINT = ('build it with `python setup.py build_ext --inplace` (or `pip install -e .`) in the '
               'repository root, with MMVIT_HYBRID_WITH_OPS unset')
_warned = set()


def ext_available() -> bool:
    """Whether the compiled kernels of ``mmvit_hybrid._ext`` are loaded."""
    return _EXT_AVAILABLE


def _warn_once(key, message):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)


def window_grid(H, W, kernel_size, padding, stride):
    """The window grid ``(Ho, Wo)`` of ``unfold(kernel_size, padding, stride)`` on an H x W map
    (``ceil(H / stride)`` for VOLO's K=3, p=1). The C++ kernels compute it once, in
    ``outlook_attention.cpp``'s geometry."""
    return (H + 2 * padding - kernel_size) // stride + 1, (W + 2 * padding - kernel_size) // stride + 1


def _check_inputs(value, attn, kernel_size, padding, stride):
    """Raise a clear error for inputs the op does not accept; return the window grid (Ho, Wo)."""
    if not isinstance(value, torch.Tensor) or not isinstance(attn, torch.Tensor):
        raise TypeError('outlook_attention: value and attn must be tensors, got '
                        f'{type(value).__name__} and {type(attn).__name__}')
    for name, arg in (('kernel_size', kernel_size), ('padding', padding), ('stride', stride)):
        if isinstance(arg, bool) or not isinstance(arg, int):
            raise TypeError(f'outlook_attention: {name} must be an int, got {arg!r}')
    if kernel_size < 1 or stride < 1 or not 0 <= padding < kernel_size:
        raise ValueError('outlook_attention: need kernel_size >= 1, stride >= 1 and '
                         f'0 <= padding < kernel_size; got kernel_size={kernel_size}, '
                         f'padding={padding}, stride={stride}')
    if value.dim() != 4:
        raise ValueError('outlook_attention: value must be (B, C, H, W), got shape '
                         f'{tuple(value.shape)}')
    if attn.dim() != 6:
        raise ValueError('outlook_attention: attn must be (B, num_heads, Ho, Wo, K*K, K*K), got '
                         f'shape {tuple(attn.shape)}')
    if not value.is_floating_point() or not attn.is_floating_point():
        raise TypeError('outlook_attention: value and attn must be floating point, got '
                        f'{value.dtype} and {attn.dtype}')
    if value.dtype != attn.dtype:
        raise TypeError(f'outlook_attention: value ({value.dtype}) and attn ({attn.dtype}) must '
                        'have the same dtype; cast one of them')
    if value.device != attn.device:
        raise ValueError(f'outlook_attention: value is on {value.device} but attn on '
                         f'{attn.device}; move both to the same device')
    B, C, H, W = value.shape
    heads = attn.shape[1]
    kk = kernel_size * kernel_size
    Ho, Wo = window_grid(H, W, kernel_size, padding, stride)
    if Ho < 1 or Wo < 1:
        raise ValueError(f'outlook_attention: a {H}x{W} map with padding {padding} is smaller '
                         f'than the {kernel_size}x{kernel_size} window')
    if attn.shape[0] != B:
        raise ValueError(f'outlook_attention: batch sizes differ: value {B}, attn {attn.shape[0]}')
    if heads < 1 or C % heads != 0:
        raise ValueError(f'outlook_attention: value has C={C} channels, which attn\'s '
                         f'num_heads={heads} (dim 1) does not divide')
    if tuple(attn.shape[2:]) != (Ho, Wo, kk, kk):
        raise ValueError(
            f'outlook_attention: attn has shape {tuple(attn.shape)}, expected '
            f'({B}, {heads}, {Ho}, {Wo}, {kk}, {kk}) for a {H}x{W} value map with '
            f'kernel_size={kernel_size}, padding={padding}, stride={stride} (Ho, Wo are the '
            f'unfold window counts; ceil(H / stride) = {math.ceil(H / stride)} for VOLO\'s '
            'kernel_size=3, padding=1)')
    return Ho, Wo


def outlook_attention_reference(value, attn, kernel_size, padding, stride):
    """Outlook attention by unfold, matmul and fold (timm's ``OutlookAttention`` before ``proj``).

    Args:
        value (Tensor): (B, C, H, W) projected values.
        attn (Tensor): (B, num_heads, Ho, Wo, K*K, K*K) attention weights (already softmaxed).
        kernel_size (int): Window size K.
        padding (int): Zero padding of the windows.
        stride (int): Window stride.

    Returns:
        Tensor: (B, C, H, W).
    """
    Ho, Wo = _check_inputs(value, attn, kernel_size, padding, stride)
    B, C, H, W = value.shape
    heads = attn.shape[1]
    kk = kernel_size * kernel_size
    v = F.unfold(value, kernel_size, padding=padding, stride=stride)  # (B, C*K*K, Ho*Wo)
    v = v.reshape(B, heads, C // heads, kk, Ho * Wo)  # (B, h, d, K*K, N)
    v = v.permute(0, 1, 4, 3, 2)  # (B, h, N, K*K, d)
    a = attn.reshape(B, heads, Ho * Wo, kk, kk)  # (B, h, N, K*K, K*K)
    out = a @ v  # (B, h, N, K*K, d)
    out = out.permute(0, 1, 4, 3, 2)  # (B, h, d, K*K, N)
    out = out.reshape(B, C * kk, Ho * Wo)  # (B, C*K*K, N)
    return F.fold(out, (H, W), kernel_size, padding=padding, stride=stride)  # (B, C, H, W)


#: namespace of the reference wrapped as one op, for the exporters (see :func:`reference_op`)
EXPORT_OP_NAMESPACE = 'mmvit_hybrid_deploy'
_reference_op_cache = []


def reference_op():
    """:func:`outlook_attention_reference` as one opaque op,
    ``torch.ops.mmvit_hybrid_deploy.outlook_attention`` (defined on first use). Without the compiled
    extension, an ONNX export records this node instead of the reference's ``unfold``/``fold``
    (``fold`` would become ``Col2Im``), and ``mmvit_hybrid.deployment.outlook_onnx`` translates it
    exactly as it translates the compiled op."""
    if not _reference_op_cache:
        @torch.library.custom_op(f'{EXPORT_OP_NAMESPACE}::outlook_attention', mutates_args=())
        def op(value: torch.Tensor, attn: torch.Tensor, kernel_size: int, padding: int,
               stride: int) -> torch.Tensor:
            return outlook_attention_reference(value, attn, kernel_size, padding, stride)

        op.register_fake(lambda value, attn, kernel_size, padding, stride: torch.empty_like(value))
        _reference_op_cache.append(op)
    return _reference_op_cache[0]


def _is_exporting() -> bool:
    """Inside ``torch.export`` (the dynamo ONNX exporter) or the TorchScript ONNX exporter."""
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


def _autocast_dtype(device_type):
    """The autocast dtype of ``device_type`` if autocast is enabled there, else None."""
    if device_type not in ('cpu', 'cuda') or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def _autocast_cast(tensors, device_type, dtype):
    """Autocast's rule for a lower-precision op: cast float tensors of ``device_type`` (float64
    excepted) to ``dtype``."""
    return [t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() and
            t.device.type == device_type and t.dtype != torch.float64 else t for t in tensors]


def outlook_attention(value, attn, kernel_size, padding, stride):
    """Fused outlook attention, ``fold(attn @ unfold(value))`` without the unfolded tensors.

    Runs ``torch.ops.mmvit_hybrid.outlook_attention_forward`` (differentiable; CPU and CUDA in
    float32, float64, half and bfloat16, half/bfloat16 with float accumulation). Under
    ``torch.autocast`` both inputs are first cast to the autocast dtype (so the float16 value and
    float32 attention of CUDA autocast are accepted). Without the compiled extension (or without
    its CUDA kernels for a CUDA input) it warns once and returns
    :func:`outlook_attention_reference`; during an ONNX export without the extension it records
    the reference as one op (:func:`reference_op`).

    Args:
        value (Tensor): (B, C, H, W) projected values, ``v = Linear(x)`` channels-first.
        attn (Tensor): (B, num_heads, Ho, Wo, K*K, K*K) softmaxed attention weights; num_heads
            divides C; Ho, Wo are the unfold window counts (``ceil(H / stride)``,
            ``ceil(W / stride)`` for kernel_size=3, padding=1).
        kernel_size (int): Window size K.
        padding (int): Zero padding of the windows (``0 <= padding < kernel_size``).
        stride (int): Window stride.

    Returns:
        Tensor: (B, C, H, W); from the compiled kernels it is channels-last in memory, so
        ``out.permute(0, 2, 3, 1)`` (what VOLO's ``proj`` reads) is contiguous.
    """
    if isinstance(value, torch.Tensor) and isinstance(attn, torch.Tensor):
        dtype = _autocast_dtype(value.device.type)
        if dtype is not None:
            value, attn = _autocast_cast((value, attn), value.device.type, dtype)
    _check_inputs(value, attn, kernel_size, padding, stride)
    if not _EXT_AVAILABLE:
        if _is_exporting():
            return reference_op()(value, attn, kernel_size, padding, stride)
        _warn_once('missing', 'mmvit_hybrid.ops.outlook_attention: the compiled extension '
                   f'mmvit_hybrid._ext is not available ({_EXT_ERROR}); using the slower '
                   'unfold/fold reference, which materialises the unfolded values. To use the '
                   f'fused kernels, {_BUILD_HINT}.')
        return outlook_attention_reference(value, attn, kernel_size, padding, stride)
    device_type = value.device.type
    if device_type == 'cuda' and not _ext.with_cuda():
        _warn_once('cuda', 'mmvit_hybrid.ops.outlook_attention: mmvit_hybrid._ext was built '
                   'without CUDA kernels; CUDA inputs use the unfold/fold reference. Rebuild '
                   'on a machine with nvcc (FORCE_CUDA=1 python setup.py build_ext --inplace).')
        return outlook_attention_reference(value, attn, kernel_size, padding, stride)
    if device_type not in ('cpu', 'cuda', 'meta'):
        _warn_once(device_type, 'mmvit_hybrid.ops.outlook_attention: no fused kernel for '
                   f'{device_type} tensors; using the unfold/fold reference.')
        return outlook_attention_reference(value, attn, kernel_size, padding, stride)
    return torch.ops.mmvit_hybrid.outlook_attention_forward(value, attn, kernel_size, padding,
                                                            stride)


def _register_autocast(qualname, lib):
    """Register :func:`_autocast_cast` with the op's current autocast dtype for the AutocastCPU
    and AutocastCUDA keys (``torch.library.register_autocast`` takes one fixed dtype; this is
    the same mechanism with the dtype read from the autocast state, float16 or bfloat16)."""
    op = torch._library.utils.lookup_op(qualname)
    name = qualname.split('::')[1]
    for device_type in ('cpu', 'cuda'):
        key_name = 'Autocast' + torch._C._dispatch_key_for_device(device_type)
        key = getattr(torch._C.DispatchKey, key_name)

        def run(*args, _device_type=device_type, _key=key):
            dtype = torch.get_autocast_dtype(_device_type)
            with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(_key)):
                return op(*_autocast_cast(args, _device_type, dtype))

        op.py_impl(key)(run)  # used while tracing (torch.compile, make_fx)
        lib.impl(name, lambda _keyset, *args, _run=run: _run(*args), key_name, with_keyset=True)


if _EXT_AVAILABLE:
    _ops = torch.ops.mmvit_hybrid
    _FWD = 'mmvit_hybrid::outlook_attention_forward'
    _GRAD_VALUE = 'mmvit_hybrid::outlook_attention_grad_value'
    _GRAD_ATTN = 'mmvit_hybrid::outlook_attention_grad_attn'
    _LIB = torch.library.Library('mmvit_hybrid', 'IMPL')  # kept alive with the module

    def _check_fake_devices(*tensors):
        # the dispatcher sends a mix of meta and real tensors here rather than to the kernels
        if len({t.device for t in tensors}) > 1:
            raise ValueError('outlook_attention: inputs are on different devices '
                             f'({", ".join(str(t.device) for t in tensors)}); move them to the '
                             'same device')

    def _empty_map(like):
        # the kernels write (B, C, H, W) maps channels-last, the layout VOLO's proj reads
        return torch.empty(like.shape, dtype=like.dtype, device=like.device,
                           memory_format=torch.channels_last)

    @torch.library.register_fake(_FWD)
    def _forward_fake(value, attn, kernel_size, padding, stride):
        _check_fake_devices(value, attn)
        return _empty_map(value)

    @torch.library.register_fake(_GRAD_VALUE)
    def _grad_value_fake(grad_output, attn, kernel_size, padding, stride):
        _check_fake_devices(grad_output, attn)
        return _empty_map(grad_output)

    @torch.library.register_fake(_GRAD_ATTN)
    def _grad_attn_fake(grad_output, value, num_heads, kernel_size, padding, stride):
        _check_fake_devices(grad_output, value)
        B, C, H, W = value.shape
        Ho, Wo = window_grid(H, W, kernel_size, padding, stride)
        kk = kernel_size * kernel_size
        return value.new_empty((B, num_heads, Ho, Wo, kk, kk))

    # The op is bilinear: out = F(v, a), grad_value = G(go, a), grad_attn = A(go, v), with
    # <G(go, a), x> = <go, F(x, a)> and <A(go, v), y> = <go, F(v, y)>. Each backward computes
    # only the gradients autograd asks for and saves only the tensors those need.

    def _save_needed(ctx, first, second):
        """Save ``second`` only if the first input needs a gradient (the gradient to input 0 of
        these bilinear ops depends only on input 1) and ``first`` only if the second does."""
        need = ctx.needs_input_grad
        ctx.save_for_backward(first if need[1] else None, second if need[0] else None)

    def _attn_pair_setup_context(ctx, inputs, output):
        """Forward and grad_value share the signature (tensor, attn, kernel_size, padding, stride)."""
        tensor, attn, kernel_size, padding, stride = inputs
        _save_needed(ctx, tensor, attn)
        ctx.cfg = (kernel_size, padding, stride)
        ctx.heads = attn.shape[1]

    def _forward_backward(ctx, grad_output):
        value, attn = ctx.saved_tensors
        need = ctx.needs_input_grad
        grad_value = _ops.outlook_attention_grad_value(grad_output, attn, *ctx.cfg) \
            if need[0] else None
        grad_attn = _ops.outlook_attention_grad_attn(grad_output, value, ctx.heads, *ctx.cfg) \
            if need[1] else None
        return grad_value, grad_attn, None, None, None

    def _grad_value_backward(ctx, gg):
        # grad_value = G(go, a): d/dgo <gg, G(go, a)> = F(gg, a); d/da = A(go, gg)
        grad_output, attn = ctx.saved_tensors
        need = ctx.needs_input_grad
        d_go = _ops.outlook_attention_forward(gg, attn, *ctx.cfg) if need[0] else None
        d_attn = _ops.outlook_attention_grad_attn(grad_output, gg, ctx.heads, *ctx.cfg) \
            if need[1] else None
        return d_go, d_attn, None, None, None

    def _grad_attn_setup_context(ctx, inputs, output):
        grad_output, value, num_heads, kernel_size, padding, stride = inputs
        _save_needed(ctx, grad_output, value)
        ctx.cfg = (kernel_size, padding, stride)

    def _grad_attn_backward(ctx, gg):
        # grad_attn = A(go, v): d/dgo <gg, A(go, v)> = F(v, gg); d/dv = G(go, gg)
        grad_output, value = ctx.saved_tensors
        need = ctx.needs_input_grad
        d_go = _ops.outlook_attention_forward(value, gg, *ctx.cfg) if need[0] else None
        d_value = _ops.outlook_attention_grad_value(grad_output, gg, *ctx.cfg) \
            if need[1] else None
        return d_go, d_value, None, None, None, None

    torch.library.register_autograd(_FWD, _forward_backward, setup_context=_attn_pair_setup_context)
    torch.library.register_autograd(_GRAD_VALUE, _grad_value_backward,
                                    setup_context=_attn_pair_setup_context)
    torch.library.register_autograd(_GRAD_ATTN, _grad_attn_backward,
                                    setup_context=_grad_attn_setup_context)
    for _qualname in (_FWD, _GRAD_VALUE, _GRAD_ATTN):
        _register_autocast(_qualname, _LIB)
