"""``torch.compile`` works on every backbone (the tests/tiny_backbones.py rows, small inputs, CPU) and matches eager.

The suite compiles with ``backend='aot_eager'`` (dynamo capture + AOTAutograd, the custom
outlook-attention op through its fake kernel and registered autograd): inductor's C++ code
generation takes about 100 s per backbone on this 2-core machine, so one inductor run per backbone
is recorded in benchmarks/README.md instead (``python benchmarks/scaling.py --compile-check``).
Graph breaks are allowed; the outputs (and for VOLO, whose fused op has a custom backward, the
gradients) must match eager.
"""
import pytest
import torch

from tiny_backbones import TINY_BACKBONES, tiny_backbone

BACKEND = 'aot_eager'


pytestmark = pytest.mark.usefixtures('one_thread')


def param_grads(model, forward, x, weights):
    """Gradients of sum(output_i * weights_i) for every parameter of ``model``, run through ``forward``."""
    model.zero_grad(set_to_none=True)
    outs = forward(x)
    outs = outs if isinstance(outs, (tuple, list)) else (outs, )
    sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def build(name):
    torch.manual_seed(0)
    model = tiny_backbone(name).build()
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('name', [row.name for row in TINY_BACKBONES])
def test_backbone_compiles_and_matches_eager(name):
    torch._dynamo.reset()
    model = build(name)
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(1))  # non-square
    compiled = torch.compile(model, backend=BACKEND)
    with torch.no_grad():
        expected, actual = model(x), compiled(x)
    assert len(expected) == len(actual) == 4
    for e, a in zip(expected, actual):
        assert e.shape == a.shape
        assert e.abs().max() > 0
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)


def test_volo_compiled_gradients_match_eager():
    """The fused outlook-attention op's autograd (registered with torch.library) under AOTAutograd."""
    torch._dynamo.reset()
    model = build('VOLO')
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    weights = [torch.randn(o.shape, generator=torch.Generator().manual_seed(4)) for o in model(x)]
    expected = param_grads(model, model, x, weights)
    actual = param_grads(model, torch.compile(model, backend=BACKEND), x, weights)
    assert expected.keys() == actual.keys()
    outlook_grad = expected['stages.0.0.attn.v.weight']
    assert outlook_grad.abs().max() > 0
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)


def test_botnet_compiles_as_one_graph_with_matching_gradients():
    """BoTNet's attention (default 'auto' -> 'matmul': explicit logits, the tables resampled by
    index arithmetic) traces without graph breaks, and the gradients match eager, also for the
    odd c4 map (4x5) whose stride-2 pooling is ceil-mode."""
    torch._dynamo.reset()
    model = build('BoTNet')
    for module in model.modules():  # undo zero_init_residual, so the attention gets gradients
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.constant_(module.weight, 1.0)
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(5))
    weights = [torch.randn(o.shape, generator=torch.Generator().manual_seed(6)) for o in model(x)]
    expected = param_grads(model, model, x, weights)
    actual = param_grads(model, torch.compile(model, backend=BACKEND, fullgraph=True), x, weights)
    rel_pos = [n for n in expected if 'rel_pos' in n]
    assert rel_pos and all(expected[n].abs().max() > 0 for n in rel_pos)
    for name in expected:  # float32 sums of magnitude ~100: compare relative to each tensor's scale
        scale = expected[name].abs().max().item()
        assert (actual[name] - expected[name]).abs().max().item() <= 1e-5 * scale + 1e-6, name
