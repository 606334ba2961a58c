"""DMA (the token mixer of the DMFormer configs) and DMAAblation (its per-level gates), each
against its formula written by hand with ``F.conv2d`` and matrix products."""
import pytest
import torch
import torch.nn.functional as F

from mmvit_hybrid.models.layers import DMA, DMAAblation

pytestmark = pytest.mark.usefixtures('one_thread')


def randomise(module):
    """Non-trivial weights everywhere (the default init leaves biases at 0)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)
    return module.eval()


def dw_levels(u, dma, levels):
    """The depthwise level outputs, written with F.conv2d."""
    return [F.conv2d(u, conv.weight, conv.bias, padding=d * (k - 1) // 2, dilation=d, groups=u.shape[1])
            for conv, (k, d) in zip(dma.levels, levels)]


def two_inputs(channels):
    x = torch.rand(2, channels, 9, 13)
    x[1] = x[1] * 3 - 1  # a different input in the second sample
    return x


def test_dma_matches_documented_formula():
    """Reading note: V = ReLU(FC(GAP(X))), Attn = Sigmoid(FC(V)), Output = Attn * Conv1x1(X'), with
    X' = sum_i DWConv_i(GELU(ExpandConv(X))) (v1's expand conv), computed by hand."""
    dma = randomise(DMA(32, expand_ratio=1.5, kernel_sizes=(3, 5), dilations=(1, 2)))
    x = torch.rand(2, 32, 11, 14)
    u = F.gelu(F.conv2d(x, dma.expand.conv.weight, dma.expand.conv.bias))  # (2, 48, 11, 14)
    assert u.shape[1] == 48 and dma.levels[0].groups == 48
    fused = sum(dw_levels(u, dma, [(3, 1), (5, 2)]))
    out = F.conv2d(fused, dma.proj_out.weight, dma.proj_out.bias)  # back to 32 channels
    gap = x.mean(dim=(2, 3))  # GAP of the mixer input, (B, C)
    v = F.relu(gap @ dma.se.fc1.weight.flatten(1).T + dma.se.fc1.bias)
    attn = torch.sigmoid(v @ dma.se.fc2.weight.flatten(1).T + dma.se.fc2.bias)  # (B, C)
    torch.testing.assert_close(dma(x), attn[:, :, None, None] * out, rtol=1e-5, atol=1e-5)
    assert dma.se.fc1.out_channels == 16  # max(32 // 4, 16)
    # one value per sample and channel, the same at every position
    torch.testing.assert_close(dma.se(x).sigmoid(), attn[:, :, None, None])
    # without the expand conv the levels run on x itself
    plain = randomise(DMA(32, expand_ratio=None, kernel_sizes=(3, ), dilations=(2, )))
    assert plain.expand is None
    expected = F.conv2d(dw_levels(x, plain, [(3, 2)])[0], plain.proj_out.weight, plain.proj_out.bias)
    torch.testing.assert_close(plain(x), plain.se(x).sigmoid() * expected, rtol=1e-5, atol=1e-5)


def test_dma_se_gate_depends_on_input():
    x = two_inputs(64)
    weights = DMA(64).se(x).sigmoid()
    assert weights.shape == (2, 64, 1, 1) and (weights[0] - weights[1]).abs().max() > 1e-4


def test_ablation_level_gate_matches_formula():
    """proj_out(sum_i a_i * DWConv_i(u)), a = sigmoid(FC(ReLU(FC(GAP(u))))) per level and channel."""
    dma = randomise(DMAAblation(32, gate='level', expand_ratio=1, kernel_sizes=(3, 5), dilations=(1, 2)))
    x = torch.rand(2, 32, 11, 14)
    u = F.gelu(F.conv2d(x, dma.expand.conv.weight, dma.expand.conv.bias))
    pooled = u.mean(dim=(2, 3))  # GAP of the expanded input, (B, E)
    hidden = F.relu(pooled @ dma.level_gate.fc1.weight.flatten(1).T + dma.level_gate.fc1.bias)
    a = torch.sigmoid(hidden @ dma.level_gate.fc2.weight.flatten(1).T + dma.level_gate.fc2.bias).view(2, 2, 32)
    fused = sum(a[:, i, :, None, None] * level for i, level in enumerate(dw_levels(u, dma, [(3, 1), (5, 2)])))
    expected = F.conv2d(fused, dma.proj_out.weight, dma.proj_out.bias)
    torch.testing.assert_close(dma(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dma.level_weights(u), a[..., None, None])
    weights = DMAAblation(64).level_weights(two_inputs(128))  # input-adaptive: differs per sample
    assert weights.shape == (2, 3, 128, 1, 1) and (weights[0] - weights[1]).abs().max() > 1e-4


def test_ablation_none_is_the_plain_sum_and_dma_without_its_gate():
    dma = randomise(DMA(32, expand_ratio=1.5, kernel_sizes=(3, 5), dilations=(1, 2)))
    none = DMAAblation(32, gate='none', expand_ratio=1.5, kernel_sizes=(3, 5), dilations=(1, 2)).eval()
    # the same parameter names as DMA's, less the SE gate: a strict load
    none.load_state_dict({k: v for k, v in dma.state_dict().items() if not k.startswith('se.')})
    x = torch.rand(2, 32, 11, 14)
    u = dma.expand(x)
    expected = F.conv2d(sum(dw_levels(u, dma, [(3, 1), (5, 2)])), dma.proj_out.weight, dma.proj_out.bias)
    torch.testing.assert_close(none(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dma(x), dma.se(x).sigmoid() * none(x), rtol=1e-5, atol=1e-5)
    assert none.level_weights(u) is None


def test_ablation_static_gate_is_input_independent():
    static = DMAAblation(64, gate='static')
    assert torch.equal(static.gate_logits, torch.zeros(3, 128))
    with torch.no_grad():
        static.gate_logits.normal_()  # learned, non-trivial constants
    x = two_inputs(128)
    weights = static.level_weights(x)
    assert weights.shape == (1, 3, 128, 1, 1)
    torch.testing.assert_close(weights, static.gate_logits.sigmoid()[None, :, :, None, None], rtol=0, atol=0)
    torch.testing.assert_close(static.level_weights(torch.rand(5, 128, 4, 4)), weights, rtol=0, atol=0)
    # the same weights for every sample: a batch equals its samples run one by one
    x = two_inputs(64)
    torch.testing.assert_close(static(x), torch.cat([static(x[:1]), static(x[1:])]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('gate', ['level', 'static'])
def test_ablation_softmax_normalises_over_levels(gate):
    x = two_inputs(128)
    softmax, sigmoid = DMAAblation(64, gate=gate, gate_act='softmax'), DMAAblation(64, gate=gate)
    with torch.no_grad():
        for m in (softmax, sigmoid):
            m.get_parameter('gate_logits' if gate == 'static' else 'level_gate.fc2.bias').normal_()
    batch = 2 if gate == 'level' else 1
    torch.testing.assert_close(softmax.level_weights(x).sum(1), torch.ones(batch, 128, 1, 1))
    assert not torch.allclose(sigmoid.level_weights(x).sum(1), torch.ones(batch, 128, 1, 1))


def test_ablation_parameter_names():
    """Shared steps keep DMA's names; each gate adds only its own parameters."""
    shared = {k for k in DMA(32).state_dict() if not k.startswith('se.')}
    for gate, extra in [('level', {'level_gate.fc1.weight', 'level_gate.fc1.bias', 'level_gate.fc2.weight',
                                   'level_gate.fc2.bias'}), ('static', {'gate_logits'}), ('none', set())]:
        assert set(DMAAblation(32, gate=gate).state_dict()) == shared | extra, gate
