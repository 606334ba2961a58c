import importlib.util
import re
from pathlib import Path

import pytest
import timm  # a test dependency (requirements/tests.txt)
import torch
import torch.nn.functional as F

from mmvit_hybrid.models import VOLO, VOLOHead
from mmvit_hybrid.models.backbones import volo as volo_module
from mmvit_hybrid.models.layers import ClassAttentionBlock, MHSABlock, OutlookAttention, Outlooker
from mmvit_hybrid.ops import outlook_attention, outlook_attention_reference
from timm.layers import resample_abs_pos_embed_nhwc


ROOT = Path(__file__).resolve().parents[1]
ARCHS = ['d1', 'd2', 'd3', 'd4', 'd5']
# the sail-sg/volo README's 27M/59M/86M/193M/296M to one more digit (timm's results csv: 26.63M ... 295.46M)
PAPER_PARAMS = {'d1': 26.6e6, 'd2': 58.7e6, 'd3': 86.3e6, 'd4': 193e6, 'd5': 296e6}
TINY = dict(depths=(1, 1, 1, 1), embed_dims=(16, 32, 32, 32), num_heads=(2, 4, 4, 4), mlp_ratio=2,
            stem_channels=8)


def _load_converter():
    spec = importlib.util.spec_from_file_location('volo_to_mmvit', ROOT / 'tools/model_converters/volo_to_mmvit.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


converter = _load_converter()


pytestmark = pytest.mark.usefixtures('one_thread')


def random_timm_volo(arch, img_size, seed=0):
    """timm's VOLO with random weights, built on the meta device and filled with seeded values
    (much faster than timm's truncated-normal init for the 300M-parameter D5)."""
    with torch.device('meta'):
        model = timm.create_model(f'volo_{arch}_224', img_size=img_size)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in model.state_dict().items():
        if name.endswith('num_batches_tracked'):
            value = torch.zeros((), dtype=torch.long)
        elif name.endswith('running_var'):
            value = torch.rand(t.shape, generator=gen) + 0.5
        elif t.dim() == 1 and name.endswith('weight'):  # norm scales
            value = 1 + 0.1 * torch.randn(t.shape, generator=gen)
        else:
            value = 0.05 * torch.randn(t.shape, generator=gen)
        state[name] = value
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def ours_from_timm(timm_state, arch, img_size):
    """This package's VOLO + VOLOHead, loaded strictly from the converted timm state dict."""
    converted = converter.convert_volo(timm_state)
    with torch.device('meta'):
        backbone = VOLO(arch, img_size=img_size, out_type='cls_and_tokens')
        head = VOLOHead(1000, backbone.embed_dims[-1])
    backbone.load_state_dict({k[len('backbone.'):]: v for k, v in converted.items() if k.startswith('backbone.')},
                             strict=True, assign=True)
    head.load_state_dict({k[len('head.'):]: v for k, v in converted.items() if k.startswith('head.')},
                         strict=True, assign=True)
    return backbone.eval(), head.eval()


def assert_parity(ref, backbone, head, x):
    with torch.no_grad():
        expected = ref(x)
        actual = head(backbone(x))
    assert expected.shape == actual.shape == (x.shape[0], 1000)
    assert expected.std() > 0.1  # non-trivial logits, so the comparison can fail
    diff = (expected - actual).abs().max().item()
    assert diff <= 1e-4, diff


@pytest.mark.parametrize('arch', ARCHS)
def test_volo_logits_match_timm(arch):
    """timm built at 64x64 (a 4x4 position embedding); ours converted from it, same input."""
    ref = random_timm_volo(arch, img_size=64)
    backbone, head = ours_from_timm(ref.state_dict(), arch, img_size=64)
    assert_parity(ref, backbone, head, torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize('arch, size', [('d1', 160), ('d1', 288), ('d2', 160)])
def test_volo_logits_match_timm_with_resized_pos_embed(arch, size):
    """Ours holds timm's 224 weights (14x14 position embedding) and runs at ``size``, interpolating
    it. timm's VOLO cannot run at another size than it was built for (it adds a fixed-size
    position embedding), so the reference is timm built at ``size`` with the 14x14 embedding
    resized by timm's own ``resample_abs_pos_embed_nhwc`` (bicubic, no antialiasing)."""
    ref224 = random_timm_volo(arch, img_size=224)
    backbone, head = ours_from_timm(ref224.state_dict(), arch, img_size=224)
    assert tuple(backbone.pos_embed.shape[1:3]) == (14, 14)
    state = dict(ref224.state_dict())
    state['pos_embed'] = resample_abs_pos_embed_nhwc(state['pos_embed'], [size // 16, size // 16], antialias=False)
    with torch.device('meta'):
        ref = timm.create_model(f'volo_{arch}_224', img_size=size)
    ref.load_state_dict(state, strict=True, assign=True)
    assert_parity(ref.eval(), backbone, head, torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2)))


def test_volo_logits_match_timm_at_odd_token_grid():
    """An 88x88 input gives an 11x11 outlooker map (the outlook windows round up) and a 5x5 grid."""
    ref = random_timm_volo('d1', img_size=80)
    backbone, head = ours_from_timm(ref.state_dict(), 'd1', img_size=80)
    assert_parity(ref, backbone, head, torch.randn(2, 3, 88, 88, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize('arch', ARCHS)
def test_volo_param_counts(arch):
    with torch.device('meta'):
        backbone = VOLO(arch, out_type='cls_and_tokens')
        head = VOLOHead(1000, backbone.embed_dims[-1])
        ref = timm.create_model(f'volo_{arch}_224')
    params = sum(p.numel() for p in backbone.parameters()) + sum(p.numel() for p in head.parameters())
    assert params == sum(p.numel() for p in ref.parameters())
    assert abs(params / PAPER_PARAMS[arch] - 1) < 0.01, params
    # the module docstring's table states the measured count
    row = next(line for line in volo_module.__doc__.splitlines() if re.match(rf'\s*{arch}\s', line))
    assert f'{params / 1e6:.2f}M' in row, row


def test_converter_rejects_foreign_keys_and_unwraps():
    ref = timm.create_model('volo_d1_224', img_size=64, num_classes=10)
    state = ref.state_dict()
    wrapped = {'state_dict': {f'module.{k}': v for k, v in state.items()}}
    assert converter.convert_volo(wrapped).keys() == converter.convert_volo(state).keys()
    assert converter.convert_key('network.3.1.mlp.fc2.bias') == 'backbone.stages.2.1.ffn.layers.1.bias'
    assert converter.convert_key('patch_embed.conv.4.running_var') == 'backbone.patch_embed.stem.1.bn.running_var'
    with pytest.raises(KeyError, match='not VOLO parameters'):
        converter.convert_volo(dict(state, **{'fc.weight': torch.zeros(1)}))


def test_classification_checkpoint_loads_into_dense_backbone(tmp_path):
    """A converted classifier checkpoint (64x64 position embedding) loads into a dense VOLO built
    for 96x96: the classification part is dropped, the embedding interpolated, the shared weights
    equal, and the dense-only layers keep their init. A wrong arch raises."""
    ref = random_timm_volo('d1', img_size=64)
    ckpt = tmp_path / 'volo_d1.pth'
    torch.save({'state_dict': converter.convert_volo(ref.state_dict())}, ckpt)
    init_cfg = dict(type='Pretrained', checkpoint=str(ckpt), prefix='backbone.')
    dense = VOLO('d1', img_size=96, out_strides=(4, 8, 16, 32), init_cfg=init_cfg)
    dense.init_weights()
    cls_backbone, _ = ours_from_timm(ref.state_dict(), 'd1', img_size=64)
    shared = cls_backbone.state_dict()
    for key, value in dense.state_dict().items():
        if key == 'pos_embed':
            resized = F.interpolate(shared[key].permute(0, 3, 1, 2), size=(6, 6), mode='bicubic', align_corners=False)
            torch.testing.assert_close(value, resized.permute(0, 2, 3, 1))
        elif key.startswith(VOLO.featmap_only_prefixes):
            assert key not in shared
        else:
            assert torch.equal(value, shared[key]), key
    with pytest.raises(ValueError, match='other shapes|does not match'):
        VOLO('d2', init_cfg=init_cfg).init_weights()


def expected_hw(h, w, stage, stride):
    """Grid of ``stage`` (stem: 7x7 s2 rounds up, 4x4 s4 down; 2x2 downsample down) resampled to
    ``stride`` (transposed convs exact, max-pool rounding up)."""
    h, w = -(-h // 2) // 4, -(-w // 2) // 4
    native = 8
    if stage > 0:
        h, w, native = h // 2, w // 2, 16
    if stride <= native:
        return h * native // stride, w * native // stride
    return -(-h * native // stride), -(-w * native // stride)


@pytest.mark.parametrize('size', [(64, 64), (67, 93), (333, 517), (16, 16)])
def test_volo_dense_pyramid_shapes(size):
    model = VOLO(arch=TINY, out_strides=(4, 8, 16, 32)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *size))
    assert model.out_channels == [16, 32, 32, 32] and model.out_strides == [4, 8, 16, 32]
    for stage, (out, channels, stride) in enumerate(zip(outs, model.out_channels, model.out_strides)):
        assert out.shape == (1, channels, *expected_hw(*size, stage, stride)), (stride, out.shape)
        assert torch.isfinite(out).all()
    if size == (333, 517):
        assert [tuple(o.shape[-2:]) for o in outs] == [(82, 128), (40, 64), (20, 32), (10, 16)]


def test_volo_dense_native_strides_and_subset():
    x = torch.rand(1, 3, 96, 128)
    model = VOLO(arch=TINY).eval()
    assert model.out_strides == [8, 16, 16, 16] and not model.resamplers
    assert [tuple(o.shape) for o in model(x)] == [(1, 16, 12, 16)] + [(1, 32, 6, 8)] * 3
    sub = VOLO(arch=TINY, out_indices=(0, -1), out_strides=(2, 64)).eval()
    assert [tuple(o.shape) for o in sub(x)] == [(1, 16, 48, 64), (1, 32, 2, 2)]
    assert sorted(sub.out_norms) == ['0', '3'] and sorted(sub.resamplers) == ['0', '3']
    assert len(sub.resamplers['0']) == 2  # 4x up: two transposed convs, the first with norm + GELU
    # stage outputs are the LayerNorm-ed stage features: stage 0 equals a manual run of the stem + outlookers
    with torch.no_grad():
        tokens = model.stages[0](model.patch_embed(x).permute(0, 2, 3, 1))
        torch.testing.assert_close(model(x)[0], model.out_norms['0'](tokens).permute(0, 3, 1, 2))


def test_volo_only_runs_needed_stages():
    model = VOLO(arch=TINY, out_indices=(0, )).eval()
    calls = []
    for i, stage in enumerate(model.stages):
        stage.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
    model(torch.rand(1, 3, 64, 64))
    assert calls == [0]


@pytest.mark.parametrize('out_type', ['featmap', 'cls_and_tokens'])
def test_volo_every_parameter_gets_gradient(out_type):
    if out_type == 'featmap':
        model = VOLO(arch=TINY, out_strides=(4, 8, 16, 32), drop_path_rate=0.1).train()
        outs = model(torch.rand(2, 3, 64, 64))
        params = list(model.named_parameters())
    else:
        model = VOLO(arch=TINY, out_type='cls_and_tokens')
        model.init_weights()  # a zero class token would give the first query projection no gradient
        model.train()
        head = VOLOHead(10, 32)
        outs = (head(model(torch.rand(2, 3, 64, 64))), )
        params = list(model.named_parameters()) + list(head.named_parameters())
    gen = torch.Generator().manual_seed(5)
    sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outs).backward()
    without_grad = [n for n, p in params if p.grad is None or not p.grad.abs().sum() > 0]
    assert not without_grad, without_grad


def test_volo_drop_path_schedule():
    model = VOLO(arch=dict(TINY, depths=(2, 1, 2, 1)), drop_path_rate=0.5, out_type='cls_and_tokens')
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for b in model.modules()
             if isinstance(b, (Outlooker, MHSABlock, ClassAttentionBlock))]
    # outlookers and class blocks 0, transformers linear in the global block index over sum(depths) - 1
    assert rates == pytest.approx([0., 0., 0.2, 0.3, 0.4, 0.5, 0., 0.])


def test_outlook_attention_layer_matches_formula():
    """proj(fold(softmax(scale * Linear(pool(x))) @ unfold(v(x)))), written out with unfold/fold."""
    layer = OutlookAttention(16, 2).eval()
    x = torch.randn(2, 7, 9, 16)
    B, H, W, C = x.shape
    v = F.unfold((x @ layer.v.weight.T).permute(0, 3, 1, 2), 3, padding=1, stride=2)  # (B, C*9, N)
    v = v.reshape(B, 2, 8, 9, -1).permute(0, 1, 4, 3, 2)  # (B, heads, N, 9, d)
    pooled = F.avg_pool2d(x.permute(0, 3, 1, 2), 2, 2, ceil_mode=True).permute(0, 2, 3, 1)  # (B, 4, 5, C)
    a = (pooled @ layer.attn.weight.T + layer.attn.bias).reshape(B, 20, 2, 9, 9).permute(0, 2, 1, 3, 4)
    a = (a * 8**-0.5).softmax(-1)
    out = (a @ v).permute(0, 1, 4, 3, 2).reshape(B, C * 9, 20)
    out = F.fold(out, (H, W), 3, padding=1, stride=2).permute(0, 2, 3, 1)
    expected = out @ layer.proj.weight.T + layer.proj.bias
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    # the op called by the layer agrees with the package's reference formulation
    value, attn = torch.randn(1, 16, 7, 9), torch.rand(1, 2, 4, 5, 9, 9)
    torch.testing.assert_close(outlook_attention(value, attn, 3, 1, 2),
                               outlook_attention_reference(value, attn, 3, 1, 2), rtol=1e-5, atol=1e-5)


# VOLOHead's prediction, losses and errors: tests/test_volo_objective.py


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(arch=dict(TINY, embed_dims=(16, 32, 48, 32))), ValueError, r'embed_dims\[1:\]'),
    (dict(arch=dict(TINY, num_heads=(3, 4, 4, 4))), ValueError, 'must divide'),
    (dict(out_type='tokens'), ValueError, "unknown out_type 'tokens'"),
    (dict(out_type='cls_and_tokens', out_indices=(2, 3)), ValueError, 'last stage only'),
    (dict(out_type='cls_and_tokens', out_strides=(16, )), ValueError, "only applies to out_type='featmap'"),
    (dict(out_strides=(4, 8, 16)), ValueError, 'one stride per out index'),
    (dict(out_strides=(4, 8, 24, 32)), ValueError, 'power of two'),
    (dict(drop_path_rate=1.), ValueError, 'drop_path_rate'),
    (dict(img_size=8), ValueError, 'img_size'),
])
def test_volo_invalid_arguments(kwargs, error, match):
    kwargs.setdefault('arch', TINY)
    with pytest.raises(error, match=match):
        VOLO(**kwargs)


def test_volo_default_init():
    model = VOLO(arch='d1', out_type='cls_and_tokens')
    model.init_weights()
    weight = model.stages[1][0].attn.qkv.weight
    assert weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.pos_embed.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.equal(model.stages[0][0].attn.attn.bias, torch.zeros_like(model.stages[0][0].attn.attn.bias))


def test_volo_head_builds_from_the_mmpretrain_registry():
    from mmpretrain.registry import MODELS as CLS
    assert isinstance(CLS.build(dict(type='VOLOHead', num_classes=3, in_channels=32)), VOLOHead)
