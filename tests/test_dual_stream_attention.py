"""DS-Net's attentions at detection scale: fused kernels, and memory linear in the tokens with dropout.

Every ``scaled_dot_product_attention`` call of a DS-Net backbone and a DS-FPN neck in training is
spied on. The layout checks are torch's own kernel-selection rules
(``aten/src/ATen/native/transformers/sdp_utils_cpp.h``: ``check_last_dim_stride_equals_1_dense``,
``check_head_dim_size_flash``; the CUDA flash and memory-efficient kernels apply the same last-dim
stride rule and take head dims that are multiples of 8 up to 256), and on CPU the choice itself,
``torch._fused_sdp_choice``, which is what SDPA dispatches on. So a layout regression that only a
GPU would pay for (a transposed q makes CUDA fall back to the math kernel) fails here.
"""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend

from mmvit_hybrid.models.backbones import DSNet
from mmvit_hybrid.models.layers import DualStreamBlock
from mmvit_hybrid.models.layers.dual_stream import dropout_attention_in_chunks
from mmvit_hybrid.models.necks import DSFPN

from test_dsnet import reference_dual_stream_block

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture
def sdpa_calls(monkeypatch):
    """Records (q, k, v, dropout_p) of every scaled_dot_product_attention call."""
    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0., **kwargs):
        calls.append((q, k, v, dropout_p))
        return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    return calls


def test_every_dsnet_and_dsfpn_attention_takes_a_fused_kernel(sdpa_calls):
    """DS-Net-T (FPN configs' attn_drop_rate=0.) and a DS-FPN on its features, training mode: every
    attention's q/k/v have the fused kernels' layout and the CPU dispatch picks flash, not math."""
    backbone = DSNet(arch='tiny', attn_drop_rate=0.).train()
    neck = DSFPN([64, 128, 320, 512], 64, 5, ds_levels=(0, 1, 2, 3)).train()
    outs = neck(backbone(torch.rand(1, 3, 96, 128)))
    sum(o.sum() for o in outs).backward()

    blocks = sum(backbone.arch_settings['depths']) + 4
    assert len(sdpa_calls) == 3 * blocks  # global self-attention and both co-attention directions
    for i, (q, k, v, dropout_p) in enumerate(sdpa_calls):
        for name, t in zip('qkv', (q, k, v)):
            assert t.stride(-1) == 1, f'call {i}: {name} has last-dim stride {t.stride(-1)}, shape {tuple(t.shape)}'
            assert t.shape[-1] % 8 == 0 and t.shape[-1] <= 256, f'call {i}: head dim {t.shape[-1]}'
        choice = torch._fused_sdp_choice(q, k, v, dropout_p=dropout_p)
        assert choice == SDPBackend.FLASH_ATTENTION.value, \
            f'call {i}: q{tuple(q.shape)} k{tuple(k.shape)} dispatches to backend {choice}, not flash'


def test_block_with_dropout_keeps_each_attention_matrix_bounded(sdpa_calls, monkeypatch):
    """With the reference's dropout 0.1 on CPU, no SDPA call sees more than the chunk budget of
    query x key pairs, while the undivided co-attention would be 4x over it."""
    import mmvit_hybrid.models.layers.dual_stream as dual_stream
    budget = 2**16
    real = dual_stream.dropout_attention_in_chunks
    monkeypatch.setattr(dual_stream, 'dropout_attention_in_chunks',
                        lambda q, k, v, p: real(q, k, v, p, max_elements=budget))
    block = DualStreamBlock(64, num_heads=2, global_stride=2, attn_drop_rate=0.1).train()
    x = torch.rand(1, 64, 32, 48, requires_grad=True)
    block(x).sum().backward()
    sizes = [q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] for q, k, _, _ in sdpa_calls]
    assert all(p == 0.1 for *_, p in sdpa_calls)
    assert len(sizes) > 3 and max(sizes) <= budget, sizes
    # undivided, local<-global would be 2 heads x 1,536 queries x 384 keys
    assert 2 * (32 * 48) * (16 * 24) > 4 * budget
    assert x.grad.abs().sum() > 0


def test_chunked_dropout_backward_sees_the_forward_mask():
    """Gradients of the chunked attention equal finite differences of the same seeded forward:
    the recomputation in backward must draw the forward's dropout masks."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 8, generator=gen, dtype=torch.float64, requires_grad=True)
               for n in (10, 6, 6))

    def seeded(q, k, v):
        torch.manual_seed(1)
        return dropout_attention_in_chunks(q, k, v, 0.3, max_elements=2 * 3 * 6)  # 4 chunks of 3, 3, 3, 1

    torch.manual_seed(1)
    assert not torch.equal(seeded(q, k, v), F.scaled_dot_product_attention(q, k, v))  # dropout is on
    assert torch.autograd.gradcheck(seeded, (q, k, v))


def test_chunked_dropout_matches_sdpa_in_expectation():
    """Dropout keeps each probability with 1 - p and scales by 1 / (1 - p): the mean over many draws
    approaches the dropout-free attention (an unscaled or per-chunk-wrong mask would not)."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, n, 8, generator=gen) for n in (12, 5, 5))
    torch.manual_seed(0)
    mean = torch.stack([dropout_attention_in_chunks(q, k, v, 0.5, max_elements=15) for _ in range(4000)]).mean(0)
    torch.testing.assert_close(mean, F.scaled_dot_product_attention(q, k, v), atol=0.08, rtol=0)


def test_block_gradients_match_the_reference_dataflow_in_training():
    """Training mode (BatchNorm batch statistics, no dropout): the block's output and the gradients of
    its input and of every parameter equal the reference dataflow with explicit softmax attention."""
    torch.manual_seed(0)
    block = DualStreamBlock(32, num_heads=2, global_stride=2, attn_drop_rate=0.).train()
    x = torch.randn(2, 32, 12, 20)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn(2, 32, 12, 20)
    out = block(x1)
    out.backward(grad)
    ours = {n: p.grad.clone() for n, p in block.named_parameters()}
    block.zero_grad()
    ref = reference_dual_stream_block(block, x2)
    ref.backward(grad)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    for name, p in block.named_parameters():
        assert p.grad.abs().sum() > 0, name
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-4, atol=1e-5, msg=name)
