import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from mmvit_hybrid.models import DMFormer
from mmvit_hybrid.models.backbones import dmformer as dmformer_module
from mmvit_hybrid.models.backbones.dmformer import DMFormerBlock
from mmvit_hybrid.models.layers import DMA, DMAAblation
from mmvit_hybrid.utils.complexity import count_flops

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = {'s': (64, 128, 320, 512), 'm': (96, 192, 384, 768), 'l': (128, 256, 512, 1024)}
DEPTHS = {'s': (2, 3, 11, 3), 'm': (3, 3, 12, 3), 'l': (3, 3, 12, 3)}
# Measured on this package's reconstruction, with global pooling and a C4 x 1000 linear head:
# (params, MACs at 224x224). The module docstring and configs/dmformer/README.md state them, and
# test_dmformer_params_and_flops checks them against the analytic count below.
MEASURED = {'s': (27_060_088, 4_417_762_816), 'm': (49_788_880, 8_259_142_656),
            'l': (87_519_176, 14_468_327_424)}
# The peer class each arch is sized for: S below Swin-T's 28M at about its 4.5G; M in the Swin-S /
# ConvNeXt-S class (50M / 8.7G); L in the Swin-B / ConvNeXt-B class (88M / 15.4G).
PEERS = {'s': ((25e6, 28e6), (4.3e9, 4.7e9)), 'm': ((45e6, 52e6), (7.5e9, 9.0e9)),
         'l': ((84e6, 92e6), (13.0e9, 16.0e9))}
TINY = dict(embed_dims=(16, 32, 32, 32), depths=(1, 1, 1, 1))


pytestmark = pytest.mark.usefixtures('one_thread')


def analytic_count(embed_dims, depths, expand_ratio=2., kernel_sizes=(3, 5, 7), dilations=None, gate='se',
                   gate_reduction=4, mlp_ratio=4, size=224, num_classes=1000):
    """(params, MACs) of DMFormer + a linear head, written out from the layer list of the module
    docstring (every conv and linear: weights + biases; BN 2 per channel; layer scales C per
    branch). MACs count conv/linear multiply-adds only, as FlopCounterMode does (an input of
    ``size`` divisible by 32); dilations change neither."""
    params, macs = 0, 0
    c1, stem = embed_dims[0], embed_dims[0] // 2
    h = size // 2  # the 7x7 stride-2 conv
    params += 3 * stem * 49 + 2 * stem + stem * stem * 9 + 2 * stem + stem * c1 * 4 + c1  # convs without bias + BN
    macs += h * h * (3 * stem * 49 + stem * stem * 9) + (h // 2) ** 2 * stem * c1 * 4
    h //= 2
    for i, (c, depth) in enumerate(zip(embed_dims, depths)):
        if i:  # 2x2 stride-2 patch conv
            h //= 2
            params += embed_dims[i - 1] * c * 4 + c
            macs += h * h * embed_dims[i - 1] * c * 4
        e = c if expand_ratio is None else int(c * expand_ratio)
        hidden = int(c * mlp_ratio)
        block_params = 2 * 2 * c + 2 * c  # two BNs, two layer scales
        block_params += 0 if expand_ratio is None else c * e + e  # expand conv
        block_params += sum(e * k * k + e for k in kernel_sizes)  # depthwise levels
        block_params += e * c + c  # Conv1x1 after the fusion
        block_params += c * hidden + hidden + hidden * c + c  # MLP
        block_macs = h * h * ((0 if expand_ratio is None else c * e) + e * sum(k * k for k in kernel_sizes)
                              + e * c + 2 * c * hidden)
        if gate == 'se':  # FC(C -> r) and FC(r -> C) on the pooled input
            r = max(c // gate_reduction, 16)
            block_params += c * r + r + r * c + c
            block_macs += 2 * c * r
        elif gate == 'level':  # FC(E -> r) and FC(r -> L * E) on the pooled expanded input
            r, num_levels = max(e // gate_reduction, 16), len(kernel_sizes)
            block_params += e * r + r + r * num_levels * e + num_levels * e
            block_macs += e * r + r * num_levels * e
        elif gate == 'static':
            block_params += len(kernel_sizes) * e
        params += depth * block_params + 2 * c  # blocks, stage-output BN
        macs += depth * block_macs
    params += embed_dims[-1] * num_classes + num_classes
    macs += embed_dims[-1] * num_classes
    return params, macs


def tiny_dmformer(**kwargs):
    """A four-block DMFormer for fast behavioural tests."""
    return DMFormer(arch=TINY, **kwargs)


def random_projection_loss(outs):
    """A loss whose gradient does not vanish through the output BatchNorms (the sum, or the mean
    square, of a BatchNorm output in train mode is constant in its input)."""
    gen = torch.Generator().manual_seed(123)
    return sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outs)


def expected_hw(h, w, stage):
    # the 7x7 stride-2 stem conv rounds up, every 2x2 stride-2 patch conv rounds down
    h, w = -(-h // 2) // 2, -(-w // 2) // 2
    return h // 2**stage, w // 2**stage


@pytest.mark.parametrize('arch', ['s', 'm', 'l'])
def test_dmformer_output_shapes(arch):
    """Shapes on the meta device (no arithmetic) at odd sizes, for every arch."""
    with torch.device('meta'):
        model = DMFormer(arch=arch).eval()
        for size in [(67, 93), (32, 32), (333, 517)]:
            outs = model(torch.empty(1, 3, *size))
            assert isinstance(outs, tuple) and len(outs) == 4
            for i, (out, channels) in enumerate(zip(outs, WIDTHS[arch])):
                assert out.shape == (1, channels, *expected_hw(*size, i)), (size, i, out.shape)
            if size == (333, 517):
                assert [tuple(o.shape[-2:]) for o in outs] == [(83, 129), (41, 64), (20, 32), (10, 16)]
    assert model.out_channels == list(WIDTHS[arch])
    assert model.out_strides == [4, 8, 16, 32]
    assert model.depths == DEPTHS[arch]


def test_dmformer_s_real_forward_is_finite():
    """One real forward of the full-size S at a small odd input (the arithmetic of every layer)."""
    model = DMFormer(arch='s').eval()
    model.init_weights()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 67, 93))
    assert [tuple(o.shape) for o in outs] == [(1, c, *expected_hw(67, 93, i)) for i, c in enumerate(WIDTHS['s'])]
    assert all(torch.isfinite(o).all() and o.std() > 0 for o in outs)


def test_dmformer_arch_aliases():
    for short, long in [('s', 'small'), ('m', 'medium'), ('l', 'large')]:
        assert DMFormer.arch_zoo[short] == DMFormer.arch_zoo[long]
    with torch.device('meta'):
        assert DMFormer(arch='MEDIUM').embed_dims == WIDTHS['m']


@pytest.mark.parametrize('arch', ['s', 'm', 'l'])
def test_dmformer_params_and_flops(arch):
    """Measured counts == the pinned numbers == the analytic count from the arch table, and in the
    peer class the table was chosen for."""
    with torch.device('meta'):  # shapes only: instant, and FlopCounterMode counts meta tensors
        model = DMFormer(arch=arch, out_indices=(3, ))
    channels = WIDTHS[arch][-1]
    head_params = channels * 1000 + 1000
    params = sum(p.numel() for p in model.parameters()) + head_params
    macs = count_flops(model, (1, 3, 224, 224)) // 2 + channels * 1000
    assert (params, macs) == analytic_count(WIDTHS[arch], DEPTHS[arch])
    assert (params, macs) == MEASURED[arch]
    (lo_p, hi_p), (lo_m, hi_m) = PEERS[arch]
    assert lo_p <= params <= hi_p
    assert lo_m <= macs <= hi_m


@pytest.mark.parametrize('mixer_cfg, mlp_ratio', [
    (dict(type='DMAAblation', gate='level'), 4),
    (dict(type='DMAAblation', gate='static', expand_ratio=None), 4),
    (dict(type='DMAAblation', gate='none', expand_ratio=1.5, kernel_sizes=(5, 3), dilations=(1, 1)), 4),
    (dict(type='DMA', gate_reduction=2), 3)])
def test_dmformer_ablation_counts_match_analytic(mixer_cfg, mlp_ratio):
    """The analytic count also holds for the ablation mixers (meta device)."""
    arch = dict(embed_dims=(32, 64, 96, 128), depths=(1, 2, 1, 1))
    with torch.device('meta'):
        model = DMFormer(arch=arch, out_indices=(3, ), mixer_cfg=mixer_cfg, mlp_ratio=mlp_ratio)
    params = sum(p.numel() for p in model.parameters()) + 128 * 1000 + 1000
    macs = count_flops(model, (1, 3, 224, 224)) // 2 + 128 * 1000
    count_args = {k: v for k, v in mixer_cfg.items() if k != 'type'}
    assert (params, macs) == analytic_count(arch['embed_dims'], arch['depths'], mlp_ratio=mlp_ratio, **count_args)


@pytest.mark.parametrize('doc', ['docstring', 'readme'])
def test_dmformer_documented_numbers_match_measured(doc):
    text = dmformer_module.__doc__ if doc == 'docstring' else (
        ROOT / 'configs/dmformer/README.md').read_text()
    for arch, (params, macs) in MEASURED.items():
        row = next((line for line in text.splitlines()
                    if re.match(rf'\s*\|?\s*`?{arch}`?\s', line)), None)
        assert row is not None, f'no row for arch {arch} in the {doc}'
        assert f'{params / 1e6:.2f}M' in row and f'{macs / 1e9:.2f}' in row, row


def test_dmformer_every_parameter_gets_gradient():
    for mixer_cfg in [dict(type='DMA'), dict(type='DMAAblation', gate='level'),
                      dict(type='DMAAblation', gate='static', gate_act='softmax'),
                      dict(type='DMAAblation', gate='none', expand_ratio=None)]:
        model = tiny_dmformer(drop_path_rate=0., mixer_cfg=mixer_cfg).train()
        random_projection_loss(model(torch.rand(2, 3, 64, 64))).backward()
        without_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not without_grad, (mixer_cfg, without_grad)


def test_dmformer_passes_mixer_cfg_to_every_block():
    static = tiny_dmformer(mixer_cfg=dict(type='DMAAblation', gate='static', gate_act='softmax', expand_ratio=3),
                           act_cfg=dict(type='ReLU'))
    mixers = [b.mixer for b in static.modules() if isinstance(b, DMFormerBlock)]
    assert len(mixers) == sum(TINY['depths']) and all(isinstance(m, DMAAblation) for m in mixers)
    assert all(m.gate == 'static' and m.gate_act == 'softmax' for m in mixers)
    assert [m.embed_dims for m in mixers] == list(TINY['embed_dims'])
    assert [m.hidden_dims for m in mixers] == [3 * c for c in TINY['embed_dims']]
    assert all(isinstance(m.expand.act, nn.ReLU) for m in mixers)  # the backbone's act_cfg by default
    assert not any('.se.' in n or 'level_gate' in n for n, _ in static.named_parameters())
    assert sum('gate_logits' in n for n, _ in static.named_parameters()) == len(mixers)
    default = tiny_dmformer()
    mixers = [b.mixer for b in default.modules() if isinstance(b, DMFormerBlock)]
    assert all(type(m) is DMA and m.hidden_dims == 2 * m.embed_dims for m in mixers)
    assert all(isinstance(m.expand.act, nn.GELU) for m in mixers)
    # the mixer's own act_cfg wins over the backbone's
    mixed = tiny_dmformer(mixer_cfg=dict(type='DMA', act_cfg=dict(type='SiLU')), act_cfg=dict(type='ReLU'))
    assert isinstance(mixed.stages[0].blocks[0].mixer.expand.act, nn.SiLU)
    assert isinstance(mixed.stages[0].blocks[0].mlp.act, nn.ReLU)


def test_dmformer_default_mixer_state_dict_keys():
    """The parameter names of DMFormer with the default mixer, which every checkpoint uses."""
    block = {k for k in tiny_dmformer().state_dict() if k.startswith('stages.1.blocks.0.mixer.')}
    names = ['expand.conv', 'levels.0', 'levels.1', 'levels.2', 'proj_out', 'se.fc1', 'se.fc2']
    assert block == {f'stages.1.blocks.0.mixer.{n}.{w}' for n in names for w in ('weight', 'bias')}


@pytest.mark.parametrize('kernel_sizes, dilations', [((7, ), (1, )), ((3, 5), (1, 1)),
                                                    ((3, 5, 7), (1, 2, 3)), ((3, 3, 5, 7), (1, 3, 2, 3))])
def test_dmformer_number_of_levels(kernel_sizes, dilations):
    model = tiny_dmformer(mixer_cfg=dict(type='DMA', kernel_sizes=kernel_sizes, dilations=dilations)).eval()
    num_blocks = sum(TINY['depths'])
    mixers = [m for m in model.modules() if isinstance(m, DMA)]
    assert all(len(m.levels) == len(kernel_sizes) for m in mixers)
    depthwise = [m for m in model.modules()
                 if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1]
    assert len(depthwise) == num_blocks * len(kernel_sizes)
    assert [(c.kernel_size[0], c.dilation[0]) for c in mixers[0].levels] == list(zip(kernel_sizes, dilations))
    assert all(m.se.fc2.out_channels == m.embed_dims for m in mixers)
    outs = model(torch.rand(1, 3, 67, 93))
    assert [tuple(o.shape[-2:]) for o in outs] == [expected_hw(67, 93, i) for i in range(4)]


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(arch=dict(embed_dims=(64, 128, 320, 512))), KeyError, r"missing \['depths'\]"),
    (dict(arch=dict(TINY, num_heads=(1, 1, 1, 1))), KeyError, r"unknown \['num_heads'\]"),
    (dict(mixer_cfg=dict(type='DMA', kernel_sizes=(3, 5), dilations=(1, ))), ValueError, 'one odd kernel size per'),
    (dict(mixer_cfg=dict(type='DMA', kernel_sizes=(), dilations=())), ValueError, 'one odd kernel size per'),
    (dict(mixer_cfg=dict(type='DMA', kernel_sizes=(3, 4), dilations=(1, 1))), ValueError, 'one odd kernel size'),
    (dict(mixer_cfg=dict(type='DMAAblation', gate='dynamic')), ValueError,
     "unknown gate 'dynamic'; choose 'level', 'static' or 'none'"),
    (dict(mixer_cfg=dict(type='DMAAblation', gate_act='relu')), ValueError, "unknown gate_act 'relu'"),
    (dict(mixer_cfg=dict(type='DMA', gate='level')), TypeError, "unexpected keyword argument 'gate'"),
    (dict(mixer_cfg=dict(type='Nope')), KeyError, 'Nope is not in the'),
    (dict(gate='level'), TypeError, "unexpected keyword argument 'gate'"),
    (dict(drop_path_rate=1.), ValueError, 'drop_path_rate'),
    (dict(kernel_size=(3, )), TypeError, 'kernel_size'),
])
def test_dmformer_invalid_arguments(kwargs, error, match):
    kwargs.setdefault('arch', TINY)
    with pytest.raises(error, match=match):
        DMFormer(**kwargs)


def test_dmformer_drop_path_schedule():
    model = DMFormer(arch=dict(TINY, depths=(1, 1, 2, 1)), drop_path_rate=0.2)
    blocks = [b for b in model.modules() if isinstance(b, DMFormerBlock)]
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for b in blocks]
    assert rates == pytest.approx([0., 0.05, 0.1, 0.15, 0.2])


def test_dmformer_default_init():
    model = tiny_dmformer()
    model.init_weights()
    weight = model.stages[2].blocks[0].mlp.fc1.weight
    assert weight.std().item() == pytest.approx(0.02, rel=0.1) and abs(weight.mean().item()) < 0.002
    assert torch.equal(model.stages[2].blocks[0].mlp.fc1.bias, torch.zeros(128))
    bn = model.stages[1].norm
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
    assert torch.equal(model.stages[1].blocks[0].gamma1, torch.full((32, ), 1e-5))


def test_dmformer_builds_from_mmdet_mmseg_mmpretrain_registries():
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as CLS
    from mmseg.registry import MODELS as SEG
    for registry in (DET, SEG, CLS):
        model = registry.build(dict(type='DMFormer', arch=TINY, out_indices=(3, ),
                                    mixer_cfg=dict(type='DMAAblation', gate='level')))
        assert isinstance(model, DMFormer) and model.out_channels == [32]
        assert isinstance(model.stages[0].blocks[0].mixer, DMAAblation)
