import math

import pytest
import torch
import torch.nn.functional as F

from mmvit_hybrid.models import DSNet
from mmvit_hybrid.models.layers import DualStreamBlock
from mmvit_hybrid.utils.complexity import count_flops

# (params with a 1000-class head, GMACs at 224x224), published in the DS-Net release (PaddleClas DSNet.md).
PUBLISHED = {'tiny': (10.5e6, 1.8e9), 'small': (23.0e6, 3.5e9), 'base': (49.3e6, 8.4e9)}


def small_dsnet(**kwargs):
    """A two-block DS-Net for fast behavioural tests."""
    arch = dict(embed_dims=(16, 32, 64, 64), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 2))
    return DSNet(arch=arch, **kwargs)


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
@pytest.mark.parametrize('size', [(224, 224), (333, 517), (64, 96)])
def test_dsnet_output_shapes(arch, size):
    """Shapes on the meta device; the values: test_dsnet_real_forward_is_finite."""
    with torch.device('meta'):
        model = DSNet(arch=arch).eval()
        outs = model(torch.empty(1, 3, *size))
    h, w = size
    # non-overlapping patch embeddings floor at every stage
    assert [tuple(o.shape) for o in outs] == [(1, c, h // 4 // 2**i, w // 4 // 2**i)
                                              for i, c in enumerate((64, 128, 320, 512))]
    assert model.out_channels == [64, 128, 320, 512]
    assert model.out_strides == [4, 8, 16, 32]


def test_dsnet_real_forward_is_finite():
    model = DSNet(arch='tiny').eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 333, 517))
    assert [tuple(o.shape[-2:]) for o in outs] == [(83, 129), (41, 64), (20, 32), (10, 16)]
    assert all(torch.isfinite(o).all() and o.abs().sum() > 0 for o in outs)


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_dsnet_params_and_flops_match_published(arch):
    with torch.device('meta'):  # shapes only; FlopCounterMode counts meta tensors
        model = DSNet(arch=arch).eval()
    head_params = 512 * 1000 + 1000  # global pool + Linear(512, 1000), as the reference classifier
    params = sum(p.numel() for p in model.parameters()) + head_params
    exp_params, exp_macs = PUBLISHED[arch]
    assert abs(params / exp_params - 1) < 0.02, params
    macs = count_flops(model, (1, 3, 224, 224)) / 2 + 512 * 1000
    assert abs(macs / exp_macs - 1) < 0.05, macs


def test_dsnet_every_parameter_gets_gradient():
    model = small_dsnet(drop_path_rate=0.)
    model.train()
    outs = model(torch.rand(2, 3, 64, 64))
    sum(o.square().mean() for o in outs).backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not without_grad


def test_dual_stream_block_uses_global_grid_and_sdpa(monkeypatch):
    block = DualStreamBlock(64, num_heads=2, global_stride=4).eval()
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append((tuple(q.shape), tuple(k.shape)))
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(torch.nn.functional, 'scaled_dot_product_attention', spy)
    out = block(torch.rand(1, 64, 17, 24))
    assert out.shape == (1, 64, 17, 24)
    # self-attention on the 4x6 global grid, then local<-global and global<-local co-attention
    assert seen == [((1, 2, 24, 16), (1, 2, 24, 16)), ((1, 2, 408, 16), (1, 2, 24, 16)),
                    ((1, 2, 24, 16), (1, 2, 408, 16))]


def reference_dual_stream_block(block, x):
    """The MixBlock dataflow of DS-Net's reference code (steps 1-6 of the dual_stream module
    docstring) written out with explicit softmax attention, reusing only the block's layers."""
    heads = block.num_heads

    def attention(q, k, v):  # (B, N, c), (B, M, c), (B, M, c) -> (B, N, c)
        (B, N, c), M = q.shape, k.shape[1]
        d = c // heads
        q, k, v = q.view(B, N, heads, d), k.view(B, M, heads, d), v.view(B, M, heads, d)
        weights = (torch.einsum('bnhd,bmhd->bhnm', q, k) / math.sqrt(d)).softmax(-1)
        return torch.einsum('bhnm,bmhd->bnhd', weights, v).reshape(B, N, c)

    def tokens(t):  # (B, c, h, w) -> (B, h * w, c)
        return t.flatten(2).transpose(1, 2)

    B, C, H, W = x.shape
    c = C // 2
    x = x + F.conv2d(x, block.cpe.weight, block.cpe.bias, padding=1, groups=C)
    y = block.proj_in(block.norm1(x))
    g, loc = y[:, :c], y[:, c:]  # global stream first
    loc = loc + block.local_dwconv(block.local_norm(loc))
    h, w = H // block.global_stride, W // block.global_stride
    g = tokens(F.interpolate(g, size=(h, w), mode='bilinear', align_corners=False))
    g = g + attention(*block.global_qkv(block.global_norm(g)).chunk(3, dim=-1))
    lq, lk, lv = tokens(block.local_co_qkv(block.local_co_norm(loc))).chunk(3, dim=-1)
    gq, gk, gv = block.global_co_qkv(block.global_co_norm(g)).chunk(3, dim=-1)
    loc = tokens(loc) + block.local_co_proj(attention(lq, gk, gv))
    g = g + block.global_co_proj(attention(gq, lk, lv))
    loc = loc.transpose(1, 2).reshape(B, c, H, W)
    g = F.interpolate(g.transpose(1, 2).reshape(B, c, h, w), size=(H, W), mode='bilinear', align_corners=False)
    x = x + block.proj_out(torch.cat([loc, g], dim=1))
    return x + block.ffn(block.norm2(x))


def test_dual_stream_block_matches_reference_dataflow():
    """The block equals the reference dataflow with explicit attention (random weights and BN
    statistics, non-square map, 2 heads)."""
    block = DualStreamBlock(32, num_heads=2, global_stride=2).eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, tensor in block.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5 if 'running_var' in name
                             else torch.randn(tensor.shape, generator=gen) * 0.3)
        x = torch.randn(2, 32, 6, 10, generator=gen)
        torch.testing.assert_close(block(x), reference_dual_stream_block(block, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(arch=dict(embed_dims=(64, 128, 320, 512), depths=(1, 1, 1, 1))), KeyError, 'missing'),
    (dict(global_strides=(8, 4)), ValueError, 'global_strides'),
    (dict(drop_path_rate=1.5), ValueError, 'drop_path_rate'),
    (dict(arch=dict(embed_dims=(64, 128, 320, 510), depths=(1, 1, 1, 1), num_heads=(1, 2, 5, 8))),
     ValueError, 'divisible by num_heads'),
    (dict(ouT_indices=(0, )), TypeError, 'ouT_indices'),
])
def test_dsnet_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DSNet(**kwargs)


def test_dsfpn_builds_from_the_mmdet_registry():
    from mmdet.registry import MODELS as DET
    assert type(DET.build(dict(type='DSFPN', in_channels=[64, 128, 320, 512], out_channels=64,
                                num_outs=5))).__name__ == 'DSFPN'
