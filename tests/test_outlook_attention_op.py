"""Tests of the fused outlook-attention op (mmvit_hybrid.ops) against the unfold/fold reference,
and of the reference against timm's OutlookAttention.

Needs only torch (and timm for the one timm test): ``mmvit_hybrid.ops`` imports without the
OpenMMLab stack, so a GPU machine with torch and a compiler runs every case here, the CUDA ones
included (``tools/gpu_check.sh``)."""
import importlib
import importlib.util
import math
import sys
import warnings

import pytest
import torch
import torch.nn as nn

import mmvit_hybrid
from mmvit_hybrid.ops import ext_available, outlook_attention, outlook_attention_reference
# the module itself (mmvit_hybrid.ops.outlook_attention is the function of the same name)
oa_module = importlib.import_module('mmvit_hybrid.ops.outlook_attention')

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                   reason='no CUDA GPU on this machine: CUDA kernels not tested')
DEVICES = ['cpu', pytest.param('cuda', marks=requires_cuda)]

# (B, C, H, W, heads, kernel_size, padding, stride): odd sizes, stride 1 and 2, batch 1, several
# head counts, VOLO's K=3/p=1 and other kernels (a stride above the kernel leaves pixels uncovered)
CASES = [
    (2, 12, 9, 11, 3, 3, 1, 2),
    (1, 8, 7, 5, 2, 3, 1, 1),
    (2, 6, 10, 10, 1, 3, 1, 2),
    (1, 24, 6, 9, 6, 3, 1, 2),
    (1, 4, 9, 9, 2, 5, 2, 3),
    (1, 4, 9, 8, 4, 2, 0, 3),
    (3, 4, 1, 1, 2, 3, 1, 2),
]


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture
def ext():
    """The compiled extension; its absence fails (CI builds it with ``pip install -e .``)."""
    assert ext_available(), (
        f'mmvit_hybrid._ext is not built ({oa_module._EXT_ERROR}); run `pip install -e .` or '
        '`python setup.py build_ext --inplace` (without MMVIT_HYBRID_WITH_OPS=0)')
    return oa_module._ext


def device_ext(ext, device):
    if device == 'cuda':
        assert ext.with_cuda(), ('mmvit_hybrid._ext has no CUDA kernels on a CUDA machine: '
                                 'rebuild with FORCE_CUDA=1')


def make_inputs(B, C, H, W, heads, k, p, s, dtype=torch.float64, device='cpu', seed=0):
    """Random value (B, C, H, W) and softmaxed attn (B, heads, Ho, Wo, k*k, k*k)."""
    gen = torch.Generator().manual_seed(seed)
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    value = torch.randn(B, C, H, W, generator=gen, dtype=torch.float64)
    attn = torch.randn(B, heads, Ho, Wo, k * k, k * k, generator=gen, dtype=torch.float64)
    return value.to(device, dtype), attn.softmax(-1).to(device, dtype)


def fwd_bwd(op, value, attn, grad, cfg):
    """Output and the gradients to value and attn for the upstream gradient ``grad``."""
    v = value.detach().requires_grad_()
    a = attn.detach().requires_grad_()
    out = op(v, a, *cfg)
    out.backward(grad)
    return out.detach(), v.grad, a.grad


def assert_parity(value, attn, cfg, atol, rtol):
    grad = torch.randn(value.shape, dtype=value.dtype, device=value.device)
    fused = fwd_bwd(outlook_attention, value, attn, grad, cfg)
    ref = fwd_bwd(outlook_attention_reference, value, attn, grad, cfg)
    for name, f, r in zip(('output', 'grad_value', 'grad_attn'), fused, ref):
        assert f.shape == r.shape and f.dtype == r.dtype, name
        torch.testing.assert_close(f, r, atol=atol, rtol=rtol, msg=lambda m: f'{name}: {m}')
    return fused


# ---------------------------------------------------------------------------------------------
# the reference is timm's computation


def test_reference_matches_timm_outlook_attention():
    timm_volo = pytest.importorskip('timm.models.volo', reason='timm is not installed (torch-only '
                                    'environment): the reference-vs-timm check needs it')
    OutlookAttention = timm_volo.OutlookAttention
    torch.manual_seed(0)
    dim, heads, k, p, s = 24, 3, 3, 1, 2
    module = OutlookAttention(dim, heads, kernel_size=k, padding=p, stride=s).double().eval()
    module.proj = nn.Identity()  # compare the part before the output projection
    x = torch.randn(2, 9, 11, dim, dtype=torch.float64)  # (B, H, W, C), odd sizes
    B, H, W, C = x.shape
    Ho, Wo = math.ceil(H / s), math.ceil(W / s)
    value = module.v(x).permute(0, 3, 1, 2)  # (B, C, H, W)
    pooled = module.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, Ho, Wo, C)
    attn = module.attn(pooled).reshape(B, Ho, Wo, heads, k * k, k * k)  # (B, Ho, Wo, h, kk, kk)
    attn = attn.permute(0, 3, 1, 2, 4, 5)  # (B, h, Ho, Wo, kk, kk)
    attn = (attn * module.scale).softmax(-1)
    expected = module(x).permute(0, 3, 1, 2)  # (B, C, H, W)
    ref = outlook_attention_reference(value, attn, k, p, s)
    torch.testing.assert_close(ref, expected, atol=1e-12, rtol=1e-12)
    if ext_available():
        torch.testing.assert_close(outlook_attention(value, attn, k, p, s), expected,
                                   atol=1e-12, rtol=1e-12)


def test_reference_is_fold_of_a_per_window_sum():
    """An independent loop formulation: every window scatters attn @ its K*K values."""
    B, C, H, W, heads, k, p, s = 1, 4, 5, 6, 2, 3, 1, 2
    value, attn = make_inputs(B, C, H, W, heads, k, p, s)
    d = C // heads
    expected = torch.zeros(B, C, H + 2 * p, W + 2 * p, dtype=value.dtype)  # padded canvas
    padded = nn.functional.pad(value, (p, p, p, p))
    for u in range(attn.shape[2]):
        for w in range(attn.shape[3]):
            win = padded[:, :, u * s:u * s + k, w * s:w * s + k]  # (B, C, k, k)
            win = win.reshape(B, heads, d, k * k)  # (B, h, d, kk)
            out = torch.einsum('bhij,bhdj->bhdi', attn[:, :, u, w], win)  # (B, h, d, kk)
            expected[:, :, u * s:u * s + k, w * s:w * s + k] += out.reshape(B, C, k, k)
    expected = expected[:, :, p:p + H, p:p + W]
    torch.testing.assert_close(outlook_attention_reference(value, attn, k, p, s), expected)


# ---------------------------------------------------------------------------------------------
# fused kernels against the reference


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('case', CASES, ids=lambda c: 'B{}C{}H{}W{}h{}k{}p{}s{}'.format(*c))
def test_parity_float64(ext, device, case):
    device_ext(ext, device)
    B, C, H, W, heads, k, p, s = case
    value, attn = make_inputs(*case, device=device)
    assert_parity(value, attn, (k, p, s), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('case', CASES[:4], ids=lambda c: 'B{}C{}H{}W{}h{}k{}p{}s{}'.format(*c))
def test_parity_float32(ext, device, case):
    device_ext(ext, device)
    value, attn = make_inputs(*case, dtype=torch.float32, device=device)
    assert_parity(value, attn, case[5:], atol=1e-5, rtol=1e-5)


def test_parity_volo_d1_stage1_shape(ext):
    """VOLO-D1 stage 1 (C=192, 6 heads) on a 14x18 map: odd window counts, all head channels."""
    case = (1, 192, 14, 18, 6, 3, 1, 2)
    value, attn = make_inputs(*case, dtype=torch.float32)
    assert_parity(value, attn, case[5:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision(ext, device, dtype):
    """Half/bfloat16 (accumulated in float) against the float64 reference on the same inputs."""
    device_ext(ext, device)
    case = (2, 16, 11, 9, 4, 3, 1, 2)
    value, attn = make_inputs(*case, dtype=dtype, device=device)
    grad = torch.randn(value.shape, device=device).to(dtype)
    fused = fwd_bwd(outlook_attention, value, attn, grad, case[5:])
    ref = fwd_bwd(outlook_attention_reference, value.double(), attn.double(), grad.double(),
                  case[5:])
    tol = 2e-2 if dtype == torch.float16 else 8e-2
    for name, f, r in zip(('output', 'grad_value', 'grad_attn'), fused, ref):
        assert f.dtype == dtype, name
        torch.testing.assert_close(f.double(), r, atol=tol, rtol=tol, msg=lambda m: f'{name}: {m}')


def poison(device, *shapes, dtype=torch.float32):
    """Allocate NaN-filled tensors of the op's output sizes and free them, so the allocator hands
    their memory (NaN) to the next allocations of those sizes: an element a kernel fails to write
    stays NaN instead of keeping a stale value from an earlier correct run."""
    blocks = [torch.full(shape, float('nan'), dtype=dtype, device=device) for shape in shapes
              for _ in range(2)]
    del blocks


def relative_error(x, ref):
    """||x - ref|| / ||ref|| in float64 (inf if x has a NaN)."""
    x, ref = x.double(), ref.double()
    return ((x - ref).norm() / ref.norm().clamp_min(1e-300)).item() if torch.isfinite(x).all() \
        else float('inf')


# bound on ||fused - ref64|| / ||ref64||: float32 accumulates in float32, half/bfloat16 store the
# result in 11 / 8 mantissa bits (relative rounding 2^-11, 2^-8), accumulation in float
REL_TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', list(REL_TOL), ids=str)
@pytest.mark.parametrize('case', [(2, 12, 9, 11, 3, 3, 1, 2), (1, 64, 10, 12, 2, 3, 1, 2),
                                  (1, 8, 7, 5, 2, 3, 1, 1)],
                         ids=lambda c: 'B{}C{}H{}W{}h{}k{}p{}s{}'.format(*c))
def test_parity_against_float64_by_relative_norm(ext, device, dtype, case):
    """Output, grad_value and grad_attn in each dtype against the float64 reference on the same
    (rounded) inputs, by relative norm; every output buffer is NaN-poisoned before the run."""
    device_ext(ext, device)
    value, attn = make_inputs(*case, dtype=dtype, device=device)
    grad = torch.randn(value.shape, dtype=torch.float64).to(device, dtype)
    ref = fwd_bwd(outlook_attention_reference, value.double(), attn.double(), grad.double(),
                  case[5:])
    poison(device, value.shape, attn.shape, dtype=dtype)
    fused = fwd_bwd(outlook_attention, value, attn, grad, case[5:])
    for name, f, r in zip(('output', 'grad_value', 'grad_attn'), fused, ref):
        assert f.dtype == dtype and f.shape == r.shape, name
        err = relative_error(f, r)
        assert err <= REL_TOL[dtype], f'{name}: relative error {err:.2e} > {REL_TOL[dtype]:.1e}'


@requires_cuda
def test_cuda_non_default_stream(ext):
    """Inputs produced on a side stream and the op called there: the kernels run on the current
    stream (no race with the producer), results equal the CPU kernel's."""
    device_ext(ext, 'cuda')
    case = (2, 32, 33, 31, 4, 3, 1, 2)
    value, attn = make_inputs(*case)
    grad = torch.randn(value.shape, dtype=value.dtype)
    expected = fwd_bwd(outlook_attention, value, attn, grad, case[5:])
    stream = torch.cuda.Stream()
    big = torch.randn(4096, 4096, device='cuda')
    with torch.cuda.stream(stream):
        stream.wait_stream(torch.cuda.current_stream())
        for _ in range(20):  # keep the side stream busy before the inputs are written
            big = (big @ big).tanh_()
        v = value.to('cuda', non_blocking=True) + 0 * big[0, 0]
        a = attn.to('cuda', non_blocking=True) + 0 * big[0, 0]
        got = fwd_bwd(outlook_attention, v, a, grad.cuda(), case[5:])
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.cpu(), e, atol=1e-12, rtol=1e-12)


@requires_cuda
def test_cuda_matches_cpu_kernel(ext):
    device_ext(ext, 'cuda')
    case = (2, 12, 13, 7, 3, 3, 1, 2)
    value, attn = make_inputs(*case)
    grad = torch.randn(value.shape, dtype=value.dtype)
    cpu = fwd_bwd(outlook_attention, value, attn, grad, case[5:])
    gpu = fwd_bwd(outlook_attention, value.cuda(), attn.cuda(), grad.cuda(), case[5:])
    for c, g in zip(cpu, gpu):
        torch.testing.assert_close(g.cpu(), c, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize('device', DEVICES)
def test_non_contiguous_inputs(ext, device):
    device_ext(ext, device)
    B, C, H, W, heads, k, p, s = 2, 12, 9, 7, 3, 3, 1, 2
    value, attn = make_inputs(B, 2 * C, H, W, heads, k, p, s, device=device)
    cases = {
        # VOLO's layout: Linear output (B, H, W, C) permuted to (B, C, H, W)
        'channels_last_view': value[:, :C].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
        'channel_stride_2': value[:, ::2],
        'transposed_hw': value[:, :C].transpose(2, 3).contiguous().transpose(2, 3),
    }
    attn_nc = attn.transpose(4, 5).contiguous().transpose(4, 5)  # same values, other strides
    assert not attn_nc.is_contiguous()
    for name, v in cases.items():
        assert not v.is_contiguous(), name
        grad = torch.randn(H, W, B, C, dtype=v.dtype, device=device).permute(2, 3, 0, 1)
        fused = fwd_bwd(outlook_attention, v, attn_nc, grad, (k, p, s))
        ref = fwd_bwd(outlook_attention_reference, v.contiguous(), attn, grad.contiguous(),
                      (k, p, s))
        for f, r in zip(fused, ref):
            torch.testing.assert_close(f, r, atol=1e-12, rtol=1e-12)


def test_output_is_channels_last(ext):
    """out.permute(0, 2, 3, 1), what VOLO's proj Linear reads, needs no copy."""
    value, attn = make_inputs(1, 8, 5, 7, 2, 3, 1, 2)
    out = outlook_attention(value, attn, 3, 1, 2)
    assert out.shape == value.shape
    assert out.permute(0, 2, 3, 1).is_contiguous()


# ---------------------------------------------------------------------------------------------
# autograd and registration


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('case', [(1, 4, 5, 4, 2, 3, 1, 2), (2, 2, 3, 3, 1, 3, 1, 1)])
def test_gradcheck(ext, device, case):
    device_ext(ext, device)
    value, attn = make_inputs(*case, device=device)
    value.requires_grad_()
    attn.requires_grad_()
    cfg = case[5:]
    assert torch.autograd.gradcheck(lambda v, a: outlook_attention(v, a, *cfg), (value, attn),
                                    fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda v, a: outlook_attention(v, a, *cfg),
                                        (value, attn), fast_mode=True)


@pytest.mark.parametrize('device', DEVICES)
def test_opcheck(ext, device):
    device_ext(ext, device)
    case = (2, 4, 5, 4, 2, 3, 1, 2)
    value, attn = make_inputs(*case, device=device)
    grad = torch.randn(value.shape, dtype=value.dtype, device=device)
    ops = torch.ops.mmvit_hybrid
    for args in [(value, attn, 3, 1, 2), (value.requires_grad_(), attn.requires_grad_(), 3, 1, 2)]:
        torch.library.opcheck(ops.outlook_attention_forward, args)
    heads = attn.shape[1]
    # the gradient ops, plain and differentiable (double backward)
    torch.library.opcheck(ops.outlook_attention_grad_value, (grad, attn.detach(), 3, 1, 2))
    torch.library.opcheck(ops.outlook_attention_grad_attn, (grad, value.detach(), heads, 3, 1, 2))
    grad.requires_grad_()
    torch.library.opcheck(ops.outlook_attention_grad_value, (grad, attn, 3, 1, 2))
    torch.library.opcheck(ops.outlook_attention_grad_attn, (grad, value, heads, 3, 1, 2))


def test_grad_to_one_input_only(ext):
    value, attn = make_inputs(1, 6, 7, 5, 3, 3, 1, 2)
    for needs_value in (True, False):
        v = value.clone().requires_grad_(needs_value)
        a = attn.clone().requires_grad_(not needs_value)
        grad = torch.autograd.grad(outlook_attention(v, a, 3, 1, 2).square().sum(),
                                   v if needs_value else a)[0]
        v_ref = value.clone().requires_grad_(needs_value)
        a_ref = attn.clone().requires_grad_(not needs_value)
        expected = torch.autograd.grad(
            outlook_attention_reference(v_ref, a_ref, 3, 1, 2).square().sum(),
            v_ref if needs_value else a_ref)[0]
        torch.testing.assert_close(grad, expected, atol=1e-12, rtol=1e-12)


class _OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the mmvit_hybrid ops that run."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == 'mmvit_hybrid':
            self.calls.append(func._opname)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('needs', ['value', 'attn', 'both'])
def test_backward_computes_only_requested_gradients(ext, needs):
    """Backward runs the grad_value kernel only when value needs a gradient and the grad_attn
    kernel only when attn does, and saves only what those need."""
    value, attn = make_inputs(1, 6, 7, 5, 3, 3, 1, 2)
    v = value.clone().requires_grad_(needs in ('value', 'both'))
    a = attn.clone().requires_grad_(needs in ('attn', 'both'))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = outlook_attention(v, a, 3, 1, 2)
    with _OpCounter() as counter:
        out.backward(torch.ones_like(out))
    expected = {'value': ['outlook_attention_grad_value'], 'attn': ['outlook_attention_grad_attn'],
                'both': ['outlook_attention_grad_value', 'outlook_attention_grad_attn']}[needs]
    assert sorted(counter.calls) == sorted(expected)
    # grad_value needs attn only, grad_attn needs value only
    saved_ptrs = {t.data_ptr() for t in saved}
    assert (a.data_ptr() in saved_ptrs) == v.requires_grad
    assert (v.data_ptr() in saved_ptrs) == a.requires_grad
    for t in (v, a):
        assert (t.grad is not None) == t.requires_grad
        if t.requires_grad:
            assert t.grad.abs().sum() > 0


def test_torch_compile_traces_the_op(ext):
    """The fake implementation lets the op run under torch.compile (no graph break needed)."""
    value, attn = make_inputs(1, 4, 5, 6, 2, 3, 1, 2)
    compiled = torch.compile(outlook_attention, backend='eager', fullgraph=True)
    torch.testing.assert_close(compiled(value, attn, 3, 1, 2),
                               outlook_attention_reference(value, attn, 3, 1, 2))


# ---------------------------------------------------------------------------------------------
# fallback to the reference


def test_fallback_when_extension_is_missing(monkeypatch):
    value, attn = make_inputs(2, 6, 7, 9, 3, 3, 1, 2)
    monkeypatch.setattr(oa_module, '_EXT_AVAILABLE', False)
    monkeypatch.setattr(oa_module, '_EXT_ERROR', 'ImportError: test')
    monkeypatch.setattr(oa_module, '_warned', set())
    with pytest.warns(UserWarning, match=r'mmvit_hybrid\._ext is not available') as record:
        out = outlook_attention(value, attn, 3, 1, 2)
    assert len(record) == 1 and 'build_ext --inplace' in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # warned once: a second call is silent
        out2 = outlook_attention(value, attn, 3, 1, 2)
    expected = outlook_attention_reference(value, attn, 3, 1, 2)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    torch.testing.assert_close(out2, expected, atol=0, rtol=0)
    if ext_available():  # the fallback gives the fused op's numbers
        monkeypatch.setattr(oa_module, '_EXT_AVAILABLE', True)
        torch.testing.assert_close(outlook_attention(value, attn, 3, 1, 2), expected,
                                   atol=1e-12, rtol=1e-12)


def test_module_import_without_extension(monkeypatch):
    """Executing the module when ``mmvit_hybrid._ext`` cannot be imported: no error at import,
    the reason is kept, and calls fall back to the reference with a warning."""
    monkeypatch.setitem(sys.modules, 'mmvit_hybrid._ext', None)  # makes the import fail
    monkeypatch.delattr(mmvit_hybrid, '_ext', raising=False)
    spec = importlib.util.spec_from_file_location('_oa_without_ext', oa_module.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not module.ext_available()
    assert 'mmvit_hybrid._ext' in module._EXT_ERROR
    value, attn = make_inputs(1, 4, 6, 5, 2, 3, 1, 2, dtype=torch.float32)
    v = value.clone().requires_grad_()
    with pytest.warns(UserWarning, match='unfold/fold reference'):
        out = module.outlook_attention(v, attn, 3, 1, 2)
    out.sum().backward()  # the fallback is differentiable
    torch.testing.assert_close(out, outlook_attention_reference(value, attn, 3, 1, 2))
    assert v.grad is not None


# ---------------------------------------------------------------------------------------------
# bad input


BAD_INPUTS = [
    # (description, value shape, value dtype, attn shape, attn dtype, k, p, s, error, match)
    ('heads_do_not_divide_C', (1, 10, 6, 6), torch.float32, (1, 3, 3, 3, 9, 9), torch.float32,
     3, 1, 2, ValueError, 'does not divide'),
    ('attn_grid_mismatch', (1, 6, 6, 6), torch.float32, (1, 3, 6, 6, 9, 9), torch.float32,
     3, 1, 2, ValueError, 'expected'),
    ('attn_kernel_mismatch', (1, 6, 6, 6), torch.float32, (1, 3, 3, 3, 4, 4), torch.float32,
     3, 1, 2, ValueError, 'expected'),
    ('no_padding_changes_grid', (1, 6, 7, 7), torch.float32, (1, 3, 4, 4, 9, 9), torch.float32,
     3, 0, 2, ValueError, 'expected'),
    ('padding_not_below_kernel', (1, 6, 6, 6), torch.float32, (1, 3, 4, 4, 9, 9), torch.float32,
     3, 3, 2, ValueError, 'padding < kernel_size'),
    ('zero_stride', (1, 6, 6, 6), torch.float32, (1, 3, 6, 6, 9, 9), torch.float32,
     3, 1, 0, ValueError, 'stride >= 1'),
    ('map_smaller_than_window', (1, 6, 2, 2), torch.float32, (1, 3, 1, 1, 25, 25), torch.float32,
     5, 1, 1, ValueError, 'smaller than'),
    ('value_3d', (6, 6, 6), torch.float32, (1, 3, 3, 3, 9, 9), torch.float32,
     3, 1, 2, ValueError, r'\(B, C, H, W\)'),
    ('integer_dtype', (1, 6, 6, 6), torch.int64, (1, 3, 3, 3, 9, 9), torch.int64,
     3, 1, 2, TypeError, 'floating point'),
    ('mixed_dtype', (1, 6, 6, 6), torch.float32, (1, 3, 3, 3, 9, 9), torch.float64,
     3, 1, 2, TypeError, 'same dtype'),
    ('batch_mismatch', (2, 6, 6, 6), torch.float32, (1, 3, 3, 3, 9, 9), torch.float32,
     3, 1, 2, ValueError, 'batch sizes differ'),
]


@pytest.mark.parametrize('bad', BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
@pytest.mark.parametrize('fn', [outlook_attention, outlook_attention_reference],
                         ids=['fused', 'reference'])
def test_bad_input_raises(fn, bad):
    _, vshape, vdtype, ashape, adtype, k, p, s, error, match = bad
    value = torch.zeros(vshape, dtype=vdtype)
    attn = torch.zeros(ashape, dtype=adtype)
    with pytest.raises(error, match=match):
        fn(value, attn, k, p, s)


@pytest.mark.parametrize('bad', BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_in_the_compiled_op(ext, bad):
    """The registered op checks its inputs itself (it can be called without the wrapper)."""
    _, vshape, vdtype, ashape, adtype, k, p, s, _, match = bad
    value = torch.zeros(vshape, dtype=vdtype)
    attn = torch.zeros(ashape, dtype=adtype)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.mmvit_hybrid.outlook_attention_forward(value, attn, k, p, s)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.mmvit_hybrid.outlook_attention_grad_value(torch.zeros(vshape, dtype=vdtype),
                                                            attn, k, p, s)


def test_mixed_devices_raise():
    value, attn = make_inputs(1, 6, 6, 6, 3, 3, 1, 2, dtype=torch.float32)
    other = 'cuda' if torch.cuda.is_available() else 'meta'
    with pytest.raises(ValueError, match='same device'):
        outlook_attention(value, attn.to(other), 3, 1, 2)
    if ext_available():
        # a real device raises in C++ (RuntimeError), meta in the fake implementation
        with pytest.raises((RuntimeError, ValueError), match='same device'):
            torch.ops.mmvit_hybrid.outlook_attention_forward(value, attn.to(other), 3, 1, 2)


def test_bad_grad_output_raises(ext):
    value, attn = make_inputs(1, 6, 6, 6, 3, 3, 1, 2)
    ops = torch.ops.mmvit_hybrid
    with pytest.raises(RuntimeError, match='grad_output shape'):
        ops.outlook_attention_grad_attn(value[:, :, :5], value, 3, 3, 1, 2)
    with pytest.raises(RuntimeError, match='same dtype'):
        ops.outlook_attention_grad_attn(value.float(), value, 3, 3, 1, 2)
    with pytest.raises(RuntimeError, match='does not divide'):
        ops.outlook_attention_grad_attn(value, value, 4, 3, 1, 2)
    with pytest.raises(RuntimeError, match='same dtype'):
        ops.outlook_attention_grad_value(value.float(), attn, 3, 1, 2)


def test_non_int_arguments_raise():
    value, attn = make_inputs(1, 6, 6, 6, 3, 3, 1, 2)
    with pytest.raises(TypeError, match='kernel_size must be an int'):
        outlook_attention(value, attn, 3.0, 1, 2)
    with pytest.raises(TypeError, match='must be tensors'):
        outlook_attention(value.numpy(), attn, 3, 1, 2)
