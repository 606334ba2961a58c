import functools
import importlib.util
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmvit_hybrid.models import BoTNet
from mmvit_hybrid.models.backbones import botnet as botnet_module
from mmvit_hybrid.models.backbones.botnet import BoTBlock
from mmvit_hybrid.models.layers import RelPosAttention
from mmvit_hybrid.models.layers.ceil_pool import ceil_pool2d
from mmvit_hybrid.models.layers.rel_pos_attention import resize_rel_pos
from mmvit_hybrid.utils.complexity import count_flops

ROOT = Path(__file__).resolve().parents[1]
CONVERTER = ROOT / 'tools/model_converters/resnet_to_botnet.py'
# Measured on this implementation (img_size=224; MACs of the explicit attn_impl='matmul' math), with
# global pooling and a 2048 x 1000 linear head: (params, MACs at 224x224). The module docstring and
# configs/botnet/README.md state them; test_botnet_counts_equal_resnet_minus_convs_plus_attention
# derives the same numbers from mmpretrain's ResNet of the same depth.
MEASURED = {'50': (20_852_008, 4_021_346_304), '101': (39_844_136, 7_733_567_488),
            '152': (55_487_784, 11_445_788_672), '200': (59_968_808, 14_939_643_904),
            's1-50': (20_859_176, 5_410_217_984)}
PAPER_BOT50_PARAMS = 20.8e6
TINY = dict(depths=(1, 1, 1, 2), strides=(1, 2, 2, 2))  # both c5 blocks with attention
IMPLS = ('matmul', 'sdpa')  # 'auto' is one of the two (test_rel_pos_attention_auto_picks_matmul_then_sdpa)


pytestmark = pytest.mark.usefixtures('one_thread')


def tiny_botnet(**kwargs):
    """A five-block BoTNet (full widths) for fast behavioural tests."""
    kwargs.setdefault('img_size', 64)
    return BoTNet(arch=TINY, num_attn_blocks=2, **kwargs)


def random_projection_loss(outs):
    """A loss whose gradient does not vanish through BatchNorms in train mode."""
    gen = torch.Generator().manual_seed(123)
    return sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outs)


def expected_hw(h, w, strides):
    """Stem: 7x7 s2 conv and 3x3 s2 max pooling round up; every stride-2 block rounds up."""
    h, w = -(-h // 4), -(-w // 4)
    sizes = []
    for s in strides:
        h, w = -(-h // s), -(-w // s)
        sizes.append((h, w))
    return sizes


def load_converter():
    spec = importlib.util.spec_from_file_location('resnet_to_botnet', CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_timm_weights(ours, timm_attn):
    with torch.no_grad():
        ours.qkv.weight.copy_(timm_attn.qkv.weight)
        ours.rel_pos_h.copy_(timm_attn.pos_embed.height_rel)
        ours.rel_pos_w.copy_(timm_attn.pos_embed.width_rel)


def reference_attention(attn, x):
    """The paper's equation written out, independent of the layer's code: the full (N, N, d)
    relative embedding ``rel_h[hk - hq + H - 1] + rel_w[wk - wq + W - 1]`` indexed from the 4-D
    coordinates of every (query, key) pair, tables resampled with ``F.interpolate``, explicit
    softmax, average pooling with ``ceil_mode``."""
    B, C, H, W = x.shape
    heads, d = attn.num_heads, attn.head_dims
    tables = []
    for table, size in ((attn.rel_pos_h, H), (attn.rel_pos_w, W)):
        if table.shape[0] != 2 * size - 1:
            table = table[(table.shape[0] - 1) // 2:][:1] if size == 1 else F.interpolate(
                table.t()[None], size=2 * size - 1, mode='linear', align_corners=True)[0].t()
        tables.append(table)
    hq, wq, hk, wk = torch.meshgrid(*[torch.arange(s) for s in (H, W, H, W)], indexing='ij')
    rel = tables[0][hk - hq + H - 1] + tables[1][wk - wq + W - 1]  # (Hq, Wq, Hk, Wk, d)
    rel = rel.reshape(H * W, H * W, d)
    qkv = F.conv2d(x, attn.qkv.weight, attn.qkv.bias).reshape(B, 3, heads, d, H * W)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # (B, heads, d, N)
    logits = (torch.einsum('bndi,bndj->bnij', q, k) + torch.einsum('bndi,ijd->bnij', q, rel)) * d**-0.5
    out = torch.einsum('bnij,bndj->bndi', logits.softmax(-1), v).reshape(B, C, H, W)
    return F.avg_pool2d(out, 2, 2, ceil_mode=True) if attn.stride == 2 else out


# ---------------------------------------------------------------- sizes


def test_bot50_parameter_count_matches_paper():
    with torch.device('meta'):
        model = BoTNet(arch='50', out_indices=(3, ))
    params = sum(p.numel() for p in model.parameters()) + 2048 * 1000 + 1000
    assert abs(params / PAPER_BOT50_PARAMS - 1) <= 0.01, params


def botnet_counts(model):
    """(params, MACs at 224x224) of a backbone plus global pooling and a 2048 x 1000 linear head."""
    params = sum(p.numel() for p in model.parameters()) + 2048 * 1000 + 1000
    return params, count_flops(model, (1, 3, 224, 224)) / 2 + 2048 * 1000


@pytest.mark.parametrize('arch', list(MEASURED))
def test_botnet_params_and_flops(arch):
    """The pinned numbers (regression; the docstring and README state them)."""
    with torch.device('meta'):  # shapes only: instant, and FlopCounterMode counts meta tensors
        model = BoTNet(arch=arch, out_indices=(3, ), attn_impl='matmul')
    params, macs = botnet_counts(model)
    exp_params, exp_macs = MEASURED[arch]
    assert abs(params / exp_params - 1) < 1e-4, params
    assert abs(macs / exp_macs - 1) < 1e-4, macs


@pytest.mark.parametrize('arch', list(MEASURED))
def test_botnet_counts_equal_resnet_minus_convs_plus_attention(arch):
    """The independent anchor of the pinned numbers: mmpretrain's ResNet of the same depth (its
    own code, counted the same way), minus the three replaced 3x3 convs, plus, analytically, the
    three qkv projections, the relative tables and the attention's multiply-adds."""
    from mmpretrain.models import ResNet
    from mmpretrain.models.backbones.resnet import Bottleneck

    class ResNets(ResNet):  # ResNet-200 (He et al. 2016, identity mappings): 3-24-36-3 bottlenecks
        arch_settings = {**ResNet.arch_settings, 200: (Bottleneck, (3, 24, 36, 3))}

    depths = BoTNet.arch_zoo[arch]['depths']
    depth = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152, (3, 24, 36, 3): 200}[depths]
    s1 = arch.startswith('s1')
    # built on the CPU (its constructor reads a tensor value), counted on the meta device
    resnet = ResNets(depth=depth, out_indices=(3, ), strides=(1, 2, 2, 1 if s1 else 2)).to('meta')
    res_params, res_macs = botnet_counts(resnet)
    c4, c5 = 14, (14 if s1 else 7)  # maps at 224: block 0 attends at c4, blocks 1-2 at c5
    maps = [c4, c5, c5]
    conv2 = 512 * 512 * 9
    params = res_params - 3 * conv2 + 3 * 512 * 1536 + sum(2 * (2 * s - 1) * 128 for s in maps)
    macs = res_macs - 3 * conv2 * c5 * c5  # the 3x3 convs all output the c5 map
    for s in maps:
        n = s * s
        # qkv 1x1; q.k and attn @ v (N x N x d per head); q.rel over the H key rows and W columns
        macs += n * 512 * 1536 + 2 * n * n * 512 + n * (s + s) * 512
    with torch.device('meta'):
        ours = botnet_counts(BoTNet(arch=arch, out_indices=(3, ), attn_impl='matmul'))
    assert ours == (params, macs)


@pytest.mark.parametrize('doc', ['docstring', 'readme'])
def test_botnet_documented_numbers_match_measured(doc):
    text = botnet_module.__doc__ if doc == 'docstring' else (ROOT / 'configs/botnet/README.md').read_text()
    for arch, (params, macs) in MEASURED.items():
        row = next((line for line in text.splitlines() if re.match(rf'\s*\|?\s*`?{arch}`?\s', line)), None)
        assert row is not None, f'no row for arch {arch} in the {doc}'
        assert f'{params / 1e6:.2f}M' in row and f'{macs / 1e9:.2f}' in row, row


# ---------------------------------------------------------------- structure and shapes


@pytest.mark.parametrize('arch, img_size', [('50', 224), ('s1-50', 224), ('50', 1024)])
def test_botnet_attention_placement_and_table_sizes(arch, img_size):
    with torch.device('meta'):
        model = BoTNet(arch=arch, img_size=img_size)
    attn = [(name, m) for name, m in model.named_modules() if isinstance(m, RelPosAttention)]
    assert [name for name, _ in attn] == ['layer4.0.conv2', 'layer4.1.conv2', 'layer4.2.conv2']
    c4 = img_size // 16
    c5 = c4 if arch.startswith('s1') else c4 // 2
    assert [m.feat_size for _, m in attn] == [(c4, c4), (c5, c5), (c5, c5)]
    assert [tuple(m.rel_pos_h.shape) for _, m in attn] == [(2 * c4 - 1, 128)] + [(2 * c5 - 1, 128)] * 2
    assert [m.stride for _, m in attn] == [1 if arch.startswith('s1') else 2, 1, 1]
    assert all(m.num_heads == 4 and m.qkv.bias is None for _, m in attn)
    # every other 3x3 conv stays a conv
    convs3 = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 3 + 4 + 6


@pytest.mark.parametrize('arch', ['50', 's1-50', '101', '152', '200', 's1-200'])
@pytest.mark.parametrize('size', [(224, 224), (333, 517), (64, 96)])
def test_botnet_output_shapes_any_size(arch, size):
    """Shapes on the meta device (the values: test_botnet_real_forward_at_odd_size)."""
    with torch.device('meta'):
        model = BoTNet(arch=arch).eval()
        outs = model(torch.empty(1, 3, *size))
    strides = BoTNet.arch_zoo[arch]['strides']
    assert [tuple(o.shape) for o in outs] == [(1, c, *hw) for c, hw in zip(
        (256, 512, 1024, 2048), expected_hw(*size, strides))]
    assert model.out_channels == [256, 512, 1024, 2048]
    assert model.out_strides == ([4, 8, 16, 16] if arch.startswith('s1') else [4, 8, 16, 32])
    depths = BoTNet.arch_zoo[arch]['depths']
    assert [len(getattr(model, f'layer{i + 1}')) for i in range(4)] == list(depths)
    if size == (333, 517) and arch == '50':
        assert [tuple(o.shape[-2:]) for o in outs] == [(84, 130), (42, 65), (21, 33), (11, 17)]


def test_botnet_real_forward_at_odd_size():
    """Resampled tables, odd maps (21x33 -> 11x17 pooling): finite, NCHW outputs of the right shape."""
    model = tiny_botnet().eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 333, 517))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 84, 130), (1, 512, 42, 65), (1, 1024, 21, 33),
                                              (1, 2048, 11, 17)]
    assert all(torch.isfinite(o).all() and o.is_contiguous() for o in outs)


# ---------------------------------------------------------------- attention math


@pytest.mark.parametrize('attn_impl', IMPLS)
@pytest.mark.parametrize('feat_size, stride', [((14, 14), 2), ((7, 7), 1), ((8, 10), 1)])
def test_rel_pos_attention_matches_timm_bottleneck_attn(attn_impl, feat_size, stride):
    from timm.layers.bottleneck_attn import BottleneckAttn
    timm_attn = BottleneckAttn(512, 512, feat_size=feat_size, stride=stride, num_heads=4, qkv_bias=False,
                               scale_pos_embed=True).eval()
    ours = RelPosAttention(512, num_heads=4, feat_size=feat_size, stride=stride, attn_impl=attn_impl).eval()
    copy_timm_weights(ours, timm_attn)
    x = torch.randn(2, 512, *feat_size)
    with torch.no_grad():
        expected, out = timm_attn(x), ours(x)
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() <= 1e-5
    # not vacuous: timm's default (unscaled q in the position term) is a different function
    timm_default = BottleneckAttn(512, 512, feat_size=feat_size, stride=stride, num_heads=4).eval()
    timm_default.load_state_dict(timm_attn.state_dict())
    with torch.no_grad():
        assert (timm_default(x) - expected).abs().max().item() > 1e-3


@pytest.mark.parametrize('attn_impl', IMPLS)
def test_rel_pos_attention_matches_formula_by_loops(attn_impl):
    """logit[(hq, wq), (hk, wk)] = d^-0.5 (q.k + q.rel_h[hk - hq + H - 1] + q.rel_w[wk - wq + W - 1])."""
    H, W, C, heads = 2, 3, 8, 2
    d = C // heads
    attn = RelPosAttention(C, num_heads=heads, feat_size=(H, W), attn_impl=attn_impl).eval()
    x = torch.randn(1, C, H, W)
    qkv = F.conv2d(x, attn.qkv.weight)[0]  # (3C, H, W)
    out = torch.zeros(C, H, W)
    for n in range(heads):
        q = qkv[n * d:(n + 1) * d]
        k = qkv[C + n * d:C + (n + 1) * d]
        v = qkv[2 * C + n * d:2 * C + (n + 1) * d]
        for hq in range(H):
            for wq in range(W):
                qi = q[:, hq, wq]
                logits = torch.tensor([[
                    (qi @ k[:, hk, wk] + qi @ attn.rel_pos_h[hk - hq + H - 1] + qi @ attn.rel_pos_w[wk - wq + W - 1])
                    * d**-0.5 for wk in range(W)] for hk in range(H)])
                weights = logits.flatten().softmax(0).view(H, W)
                out[n * d:(n + 1) * d, hq, wq] = (v * weights).sum((1, 2))
    with torch.no_grad():
        torch.testing.assert_close(attn(x)[0], out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('attn_impl', IMPLS)
@pytest.mark.parametrize('size', [(7, 7), (5, 11), (1, 4), (6, 1)])
def test_rel_pos_attention_matches_reference_with_gradients(attn_impl, size):
    """Both implementations equal :func:`reference_attention` in outputs and in the gradients of
    the input, qkv and both tables, at the built size and resampled (non-square, 1-pixel axes)."""
    attn = RelPosAttention(64, num_heads=4, feat_size=(7, 7), stride=2, qkv_bias=True, attn_impl=attn_impl)
    torch.nn.init.normal_(attn.qkv.bias)
    x = torch.randn(2, 64, *size)
    results = []
    for fn in (attn, functools.partial(reference_attention, attn)):
        attn.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        out = fn(xi)
        random_projection_loss([out]).backward()
        results.append([out.detach(), xi.grad] + [p.grad for p in attn.parameters()])
    for name, got, expected in zip(['out', 'x'] + [n for n, _ in attn.named_parameters()], *results):
        assert expected.abs().sum() > 0, name  # every gradient reaches every input
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5, msg=name)


def test_rel_pos_attention_auto_picks_matmul_then_sdpa(monkeypatch):
    attn = RelPosAttention(64, num_heads=4, feat_size=(6, 5)).eval()
    assert attn.attn_impl == 'auto'
    assert attn.resolve_impl(2, 30) == 'matmul'  # 2 * 4 * 30 * 30 logits
    assert attn.resolve_impl(4, 1024) == 'matmul'  # four 32x32 maps: 2^24 logits, the limit
    assert attn.resolve_impl(5, 1024) == 'sdpa'
    assert attn.resolve_impl(1, 4096) == 'sdpa'  # one 64x64 map: 2^26 logits
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, 'scaled_dot_product_attention', lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(2, 64, 6, 5)
    with torch.no_grad():
        small = attn(x)
        assert not calls  # explicit logits
        attn.auto_max_logits = 2 * 4 * 30 * 30 - 1  # now above the limit: the fused path
        assert attn.resolve_impl(2, 30) == 'sdpa'
        torch.testing.assert_close(attn(x), small, rtol=1e-5, atol=1e-6)
        assert calls == [1]
    fixed = RelPosAttention(64, num_heads=4, feat_size=(6, 5), attn_impl='matmul')
    assert fixed.resolve_impl(100, 10**4) == 'matmul'


@pytest.mark.parametrize('s', [2, 3])
@pytest.mark.parametrize('hw', [(6, 6), (7, 5), (1, 4)])
def test_ceil_pool2d_matches_ceil_mode_pooling(s, hw):
    """ceil_pool2d (BoTNet's strided attention, VOLO's outlook pooling and resampler) gives the
    values of torch's ceil-mode average and max pooling, odd edges included (bit for bit at s=2,
    where the in-bounds fractions are powers of two)."""
    x = torch.randn(2, 3, *hw)
    exact = dict(rtol=0, atol=0) if s == 2 else {}
    torch.testing.assert_close(ceil_pool2d(x, s), F.avg_pool2d(x, s, s, ceil_mode=True), **exact)
    torch.testing.assert_close(ceil_pool2d(x, s, 'max'), F.max_pool2d(x, s, s, ceil_mode=True), rtol=0, atol=0)


def test_ceil_pool2d_under_inductor_matches_eager_gradients():
    """torch 2.13's inductor gets avg_pool2d(ceil_mode=True)'s backward wrong on odd maps (contrast);
    ceil_pool2d equals it in eager and stays right compiled."""
    x = torch.randn(2, 3, 6, 5, generator=torch.Generator().manual_seed(6), requires_grad=True)

    def value_and_grad(fn):
        """(output, gradient of the output weighted by arange) of each of fn's outputs."""
        outs = fn(x)
        results = []
        for out in (outs if isinstance(outs, tuple) else (outs, )):
            weight = torch.arange(out.numel(), dtype=out.dtype).view(out.shape)
            results.append((out, torch.autograd.grad((out * weight).sum(), x, retain_graph=True)[0]))
        return results if isinstance(outs, tuple) else results[0]

    def ceil_pool(t):
        return F.avg_pool2d(t, 2, 2, ceil_mode=True)

    eager_out, eager_grad = value_and_grad(ceil_pool)
    out, grad = value_and_grad(lambda t: ceil_pool2d(t, 2))
    torch.testing.assert_close(out, eager_out)
    torch.testing.assert_close(grad, eager_grad)
    # both poolings in one compiled graph (one forward and one backward compile: inductor's C++
    # build is the cost of this test); each output's gradient taken separately
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: (ceil_pool2d(t, 2), ceil_pool(t)), backend='inductor', fullgraph=True)
    (out, plain_out), (grad, plain_grad) = zip(*value_and_grad(compiled))
    torch._dynamo.reset()
    torch.testing.assert_close(out, eager_out)
    torch.testing.assert_close(grad, eager_grad)
    torch.testing.assert_close(plain_out, eager_out)  # the forward is right,
    assert (plain_grad - eager_grad).abs().max() > 0.1  # the backward is the torch bug the formulation avoids


def test_botnet_outputs_are_nchw_for_mmcv_ops():
    """mmcv 2.1.0's CPU RoIAlign reads a channels-last map wrongly (contrast below), and BoTNet's c5
    map reaches it through the neck: the outputs must be NCHW-contiguous."""
    from mmcv.ops import RoIAlign
    model = tiny_botnet().eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert all(o.is_contiguous() for o in outs)
    feat = torch.randn(1, 8, 16, 16)
    rois = torch.tensor([[0, 1.0, 2.0, 10.0, 12.0], [0, 3.0, 3.0, 8.0, 15.0]])
    roi_align = RoIAlign((4, 4), 1.0, 2)
    nchw, cl = roi_align(feat, rois), roi_align(feat.contiguous(memory_format=torch.channels_last), rois)
    assert not torch.allclose(nchw, cl)  # why: the mmcv bug this guards against


def test_resampling_is_identity_at_trained_size_and_interpolates_otherwise():
    table = torch.randn(27, 16)
    assert torch.equal(resize_rel_pos(table, 14), table)
    resized = resize_rel_pos(table, 21)
    assert resized.shape == (41, 16)
    # offsets 0 and +-(S - 1) map onto each other; the rest is linear in between
    torch.testing.assert_close(resized[[0, 20, 40]], table[[0, 13, 26]])
    torch.testing.assert_close(resized[10], table[6] + 0.5 * (table[7] - table[6]))
    for size in (3, 21, 40):  # what F.interpolate(align_corners=True) computes
        expected = F.interpolate(table.t()[None], size=2 * size - 1, mode='linear', align_corners=True)[0].t()
        torch.testing.assert_close(resize_rel_pos(table, size), expected)
    torch.testing.assert_close(resize_rel_pos(table, 1), table[13:14])
    # at the trained size the resampling mode gives exactly the fixed-size result
    free = RelPosAttention(64, feat_size=(6, 9)).eval()
    fixed = RelPosAttention(64, feat_size=(6, 9), fixed_input_size=True).eval()
    fixed.load_state_dict(free.state_dict())
    x = torch.randn(1, 64, 6, 9)
    assert torch.equal(free(x), fixed(x))


def test_resampled_layer_equals_layer_built_for_that_size():
    """At another size the layer behaves as one built for that size holding the interpolated tables."""
    attn = RelPosAttention(64, feat_size=(7, 7)).eval()
    other = RelPosAttention(64, feat_size=(5, 12)).eval()
    with torch.no_grad():
        other.qkv.weight.copy_(attn.qkv.weight)
        table_h = F.interpolate(attn.rel_pos_h.t()[None], size=9, mode='linear', align_corners=True)[0].t()
        table_w = F.interpolate(attn.rel_pos_w.t()[None], size=23, mode='linear', align_corners=True)[0].t()
        other.rel_pos_h.copy_(table_h)
        other.rel_pos_w.copy_(table_w)
        x = torch.randn(2, 64, 5, 12)
        torch.testing.assert_close(attn(x), other(x))


def test_botnet_at_img_size_equals_fixed_canvas_mode():
    free = tiny_botnet(img_size=96).eval()
    fixed = tiny_botnet(img_size=96, fixed_input_size=True).eval()
    fixed.load_state_dict(free.state_dict())
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        for a, b in zip(free(x), fixed(x)):
            assert torch.equal(a, b)


def test_fixed_input_size_rejects_other_sizes():
    model = tiny_botnet(img_size=(128, 160), fixed_input_size=True).eval()
    with pytest.raises(ValueError, match=r'built for 128x160 inputs.*got 333x517.*Pad.*fixed_input_size=False'):
        model(torch.rand(1, 3, 333, 517))
    attn = RelPosAttention(64, feat_size=8, fixed_input_size=True)
    with pytest.raises(ValueError, match=r'8x8 feature map.*got 8x9.*pad the input.*fixed_input_size=False'):
        attn(torch.rand(1, 64, 8, 9))
    with torch.no_grad():
        assert model(torch.rand(1, 3, 128, 160))[-1].shape == (1, 2048, 4, 5)


# ---------------------------------------------------------------- ResNet-50 weights


@pytest.fixture(scope='module')
def torchvision_r50(tmp_path_factory):
    import torchvision
    torch.manual_seed(1)
    state = torchvision.models.resnet50().state_dict()
    path = tmp_path_factory.mktemp('r50') / 'resnet50_torchvision.pth'
    torch.save(state, path)
    return path, state


BN2 = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
EXPECTED_NEW = [f'layer4.{j}.conv2.{name}' for j in range(3) for name in ('rel_pos_h', 'rel_pos_w', 'qkv.weight')]
EXPECTED_NEW += [f'layer4.{j}.bn2.{name}' for j in range(3) for name in BN2]
EXPECTED_DROPPED = {f'layer4.{j}.conv2.weight' for j in range(3)} | {f'layer4.{j}.bn2.{name}' for j in range(3)
                                                                     for name in BN2} | {'fc.weight', 'fc.bias'}


def test_resnet50_converter_report_and_strict_loading(torchvision_r50, tmp_path):
    path, r50_state = torchvision_r50
    converter = load_converter()
    botnet = BoTNet(arch='50', img_size=1024)
    state, report = converter.convert(torch.load(path, weights_only=True), botnet)
    assert sorted(report['new']) == sorted(EXPECTED_NEW)
    assert set(report['dropped']) == EXPECTED_DROPPED
    assert len(report['loaded']) == len(r50_state) - len(EXPECTED_DROPPED)
    assert set(report['loaded']) | set(report['new']) == set(botnet.state_dict())
    ckpt = tmp_path / 'bot50.pth'
    torch.save({'state_dict': state}, ckpt)
    loaded = BoTNet(arch='50', img_size=1024, init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    loaded.init_weights()
    loaded_state = loaded.state_dict()
    for key in report['loaded']:  # every ResNet layer arrives unchanged
        assert torch.equal(loaded_state[key], r50_state[key]), key
    for key in EXPECTED_NEW:  # the attention layers are initialised (not zeros, not the 3x3 conv)
        if '.conv2.' in key:
            assert loaded_state[key].std() > 0, key
    for j in range(3):  # the BN after the attention starts fresh
        assert torch.equal(loaded_state[f'layer4.{j}.bn2.running_var'], torch.ones(512))
        assert torch.equal(loaded_state[f'layer4.{j}.bn2.weight'], torch.ones(512))
    # mmdet layout (state_dict, backbone. prefix): same mapping
    from mmdet.models.backbones import ResNet
    mmdet_state = {'state_dict': {f'backbone.{k}': v for k, v in ResNet(depth=50).state_dict().items()}}
    _, report = converter.convert(mmdet_state, botnet)
    assert sorted(report['new']) == sorted(EXPECTED_NEW)
    assert set(report['dropped']) == EXPECTED_DROPPED - {'fc.weight', 'fc.bias'}
    # the report names every new tensor
    text = converter.format_report(report)
    assert all(k in text for k in EXPECTED_NEW) and 'newly initialised' in text


def test_resnet_converter_rejects_other_depth(tmp_path):
    from mmdet.models.backbones import ResNet
    converter = load_converter()
    with torch.device('meta'):
        r101, bot50 = ResNet(depth=101).state_dict(), BoTNet(arch='50')
    with pytest.raises(ValueError, match=r'no place.*layer3\.6.*--arch'):
        converter.convert(r101, bot50)


def test_resnet_converter_cli(torchvision_r50, tmp_path, monkeypatch, capsys):
    """The command line (run as __main__ in this process: the same argument parsing and report)."""
    path, _ = torchvision_r50
    dst = tmp_path / 'bot50_224.pth'
    monkeypatch.setattr(sys, 'argv', [str(CONVERTER), str(path), str(dst), '--arch', '50'])
    runpy.run_path(str(CONVERTER), run_name='__main__')
    out = capsys.readouterr().out
    assert 'newly initialised (BoTNet default init): 24 tensors' in out
    assert all(k in out for k in EXPECTED_NEW)
    model = BoTNet(arch='50', init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()  # strict: raises on any mismatch


def test_plain_resnet_checkpoint_error_names_the_converter(torchvision_r50):
    path, _ = torchvision_r50
    model = BoTNet(arch='50', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    match = r'(?s)missing keys.*resnet_to_botnet\.py SRC DST --arch ARCH --img-size 224 224'
    with pytest.raises(ValueError, match=match):
        model.init_weights()


def test_checkpoint_for_other_img_size_error(tmp_path):
    ckpt = tmp_path / 'bot_128.pth'
    torch.save({'state_dict': tiny_botnet(img_size=128).state_dict()}, ckpt)
    model = tiny_botnet(img_size=64, init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    with pytest.raises(ValueError, match='set img_size to the size it was trained at'):
        model.init_weights()


# ---------------------------------------------------------------- switches


def test_botnet_every_parameter_gets_gradient():
    model = tiny_botnet().train()
    model.init_weights()
    for m in model.modules():  # zero-init residual BNs would block the gradient of their convs
        if isinstance(m, BoTBlock):
            torch.nn.init.ones_(m.norm3.weight)
    random_projection_loss(model(torch.rand(2, 3, 64, 96))).backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not without_grad


def test_botnet_default_init():
    model = tiny_botnet()
    model.init_weights()
    assert all(torch.equal(m.norm3.weight, torch.zeros_like(m.norm3.weight))
               for m in model.modules() if isinstance(m, BoTBlock))
    attn = model.layer4[0].conv2
    assert attn.rel_pos_h.std().item() == pytest.approx(128**-0.5, rel=0.2)
    assert attn.qkv.weight.std().item() == pytest.approx(512**-0.5, rel=0.1)
    conv = model.layer2[0].conv2  # Kaiming fan-out
    assert conv.weight.std().item() == pytest.approx((2 / (128 * 9))**0.5, rel=0.1)
    model = tiny_botnet(zero_init_residual=False)
    model.init_weights()
    assert torch.equal(model.layer4[1].norm3.weight, torch.ones(2048))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(arch='34'), KeyError, "unknown arch '34'"),
    (dict(arch=dict(depths=(3, 4, 6, 3))), KeyError, r"missing \['strides'\]"),
    (dict(arch=dict(depths=(3, 4, 6, 3), strides=(1, 2, 2, 3))), ValueError, 'strides must be 1 or 2'),
    (dict(arch=dict(depths=(3, 4, 6, 2), strides=(1, 2, 2, 2))), ValueError, r'num_attn_blocks.*\[0, 2\]'),
    (dict(num_heads=3), ValueError, 'divisible by num_heads'),
    (dict(attn_impl='flash'), ValueError, "unknown attn_impl 'flash'"),
    (dict(img_size=16), ValueError, 'img_size'),
    (dict(img_size=(224, 224, 3)), ValueError, 'img_size'),
    (dict(depth=50), TypeError, 'depth'),
])
def test_botnet_invalid_arguments(kwargs, error, match):
    with torch.device('meta'), pytest.raises(error, match=match):
        BoTNet(**kwargs)


def test_pretrained_mismatch_explains_botnet_causes(tmp_path):
    """A checkpoint without the attention layers names the ResNet converter; one with tables of
    another img_size says to set img_size."""
    state = tiny_botnet().state_dict()
    no_attn = tmp_path / 'resnet_like.pth'
    torch.save({k: v for k, v in state.items() if 'conv2.qkv' not in k and 'rel_pos' not in k}, no_attn)
    other_size = tmp_path / 'img96.pth'
    torch.save(tiny_botnet(img_size=96).state_dict(), other_size)
    for path, advice in [(no_attn, 'the attention layers are missing from this checkpoint'),
                         (other_size, 'sized for another img_size than (64, 64)')]:
        with pytest.raises(ValueError, match=re.escape(advice)):
            tiny_botnet(init_cfg=dict(type='Pretrained', checkpoint=str(path))).init_weights()
