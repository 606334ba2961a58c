"""Robustness of the fused outlook-attention op: empty batches, concurrent callers, and indices past
2^31 elements (CUDA only: the CPU kernel computes every offset in int64 and is exercised on real
sizes by tests/test_outlook_attention_op.py)."""
import math
import threading

import pytest
import torch

from mmvit_hybrid.ops import ext_available, outlook_attention, outlook_attention_reference

def make_inputs(batch, channels=12, height=7, width=9, heads=3, kernel=3, stride=2, device='cpu',
                dtype=torch.float64):
    """Random value (B, C, H, W) and softmaxed attention (B, heads, Ho, Wo, K*K, K*K)."""
    ho, wo = math.ceil(height / stride), math.ceil(width / stride)
    value = torch.randn(batch, channels, height, width, device=device, dtype=dtype)
    attn = torch.randn(batch, heads, ho, wo, kernel**2, kernel**2, device=device, dtype=dtype).softmax(-1)
    return value, attn


def test_extension_is_built():
    assert ext_available(), 'mmvit_hybrid._ext is missing: build it with `pip install -e .` (tools/install.sh)'


@pytest.mark.parametrize('batch', [0, 1])
def test_empty_and_single_batches(batch):
    value, attn = make_inputs(batch)
    value.requires_grad_()
    attn.requires_grad_()
    out = outlook_attention(value, attn, 3, 1, 2)
    ref = outlook_attention_reference(value, attn, 3, 1, 2)
    assert out.shape == ref.shape == value.shape
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grad_v, grad_a = torch.autograd.grad(out.square().sum(), (value, attn))
    ref_v, ref_a = torch.autograd.grad(ref.square().sum(), (value, attn))
    assert grad_v.shape == value.shape and grad_a.shape == attn.shape
    torch.testing.assert_close(grad_v, ref_v, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad_a, ref_a, rtol=1e-10, atol=1e-10)


def test_concurrent_callers_get_their_own_results():
    """Eight threads call forward and backward at once on different inputs; every result equals the
    same call made alone (no shared scratch state in the kernels)."""
    cases = [make_inputs(2, height=11 + i, width=13 - i) for i in range(8)]
    expected = []
    for value, attn in cases:
        v, a = value.clone().requires_grad_(), attn.clone().requires_grad_()
        out = outlook_attention(v, a, 3, 1, 2)
        expected.append((out.detach(), *torch.autograd.grad(out.sum(), (v, a))))

    results, errors = [None] * len(cases), []
    barrier = threading.Barrier(len(cases))

    def work(i):
        try:
            value, attn = cases[i]
            v, a = value.clone().requires_grad_(), attn.clone().requires_grad_()
            barrier.wait()
            for _ in range(5):
                out = outlook_attention(v, a, 3, 1, 2)
                results[i] = (out.detach(), *torch.autograd.grad(out.sum(), (v, a)))
        except Exception as err:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i, )) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, want in zip(results, expected):
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA GPU on this machine: the >2^31-element case needs one')
def test_cuda_indices_past_int32():
    """A value map of more than 2^31 elements (half precision, ~4.3 GB; ~25 GB in all with the
    gradients): forward and backward take the 64-bit index path, and the last pixels' output,
    grad_value and the last windows' grad_attn match the reference computed on the bottom-right
    crop, so no offset wrapped around."""
    channels, heads, height, width = 64, 2, 4096, 8200  # 64 * 4096 * 8200 > 2^31
    value, attn = make_inputs(1, channels, height, width, heads, device='cuda', dtype=torch.float16)
    assert value.numel() > 2**31
    value.requires_grad_()
    attn.requires_grad_()
    out = outlook_attention(value, attn, 3, 1, 2)
    # the upstream gradient is non-zero on the last 6x6 pixels only: they and the last 3x3 windows
    # see only the crop below (rows/columns -8: of the map, windows -4: of the grid)
    grad = torch.zeros_like(out)
    grad[..., -6:, -6:] = torch.randn(1, channels, 6, 6, device='cuda', dtype=torch.float16)
    grad_v, grad_a = torch.autograd.grad(out, (value, attn), grad)
    crop_v = value.detach()[..., -8:, -8:].float().requires_grad_()
    crop_a = attn.detach()[:, :, -4:, -4:].float().requires_grad_()
    ref = outlook_attention_reference(crop_v, crop_a, 3, 1, 2)
    ref_v, ref_a = torch.autograd.grad(ref, (crop_v, crop_a), grad[..., -8:, -8:].float())
    tol = dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out[..., -6:, -6:].float(), ref[..., -6:, -6:], **tol)
    torch.testing.assert_close(grad_v[..., -6:, -6:].float(), ref_v[..., -6:, -6:], **tol)
    torch.testing.assert_close(grad_a[:, :, -3:, -3:].float(), ref_a[:, :, -3:, -3:], **tol)
    assert grad_a[:, :, -3:, -3:].abs().sum() > 0 and grad_v[..., -6:, -6:].abs().sum() > 0
