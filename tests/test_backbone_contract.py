"""The contract of every backbone, run on each row of tests/tiny_backbones.py: output shapes and
``out_indices``, ``frozen_stages``, ``norm_eval``, ``with_cp``, ``init_cfg``, bad input and bad
arguments, the registries. The expectations come from the row (channels, the stage of each
parameter, the smallest input) and the shared strides 4/8/16/32, not from the model's attributes.
Model-specific behaviour (sizes at odd inputs, numerical parity, the blocks' math) stays in each
model's test file."""
import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from tiny_backbones import STRIDES, TINY_BACKBONES

pytestmark = pytest.mark.usefixtures('one_thread')
ROWS = pytest.mark.parametrize('row', TINY_BACKBONES, ids=lambda row: row.name)
H, W = 64, 96  # divisible by 32: every stride gives an exact size, whatever the rounding


def random_projection_loss(outs):
    """A loss whose gradient does not vanish through BatchNorms in train mode (the sum of a
    BatchNorm output is constant in its input)."""
    gen = torch.Generator().manual_seed(123)
    return sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outs)


def expected_shapes(row, indices, batch=2):
    return [(batch, row.channels[i], H // STRIDES[i], W // STRIDES[i]) for i in indices]


@ROWS
@pytest.mark.parametrize('out_indices, stages', [
    (None, [0, 1, 2, 3]), ((1, -1), [1, 3]), ((-4, ), [0]), ((3, ), [3]), ((2, 0), [0, 2])])
def test_out_indices_shapes_and_channels(row, out_indices, stages):
    model = (row.build() if out_indices is None else row.build(out_indices=out_indices)).eval()
    with torch.no_grad():
        outs = model(torch.rand(2, 3, H, W))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == expected_shapes(row, stages)
    assert all(torch.isfinite(o).all() for o in outs)
    assert model.out_indices == stages
    assert model.out_channels == [row.channels[i] for i in stages]
    assert model.out_strides == [STRIDES[i] for i in stages]


@ROWS
@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 3, 4])
def test_frozen_stages(row, frozen_stages):
    """Frozen: no gradient, eval mode after ``.train()``, no change in a training step (weights and
    BN statistics). The first unfrozen stage: every parameter gets a non-zero gradient."""
    model = row.build(frozen_stages=frozen_stages)
    model.train()
    model.train(False).train()  # freezing survives a round trip

    def frozen(name):
        stage = row.stage(name)
        return stage is not None and stage < frozen_stages

    for name, p in model.named_parameters():
        assert p.requires_grad != frozen(name), name
    for name, m in model.named_modules():
        try:
            stage = row.stage(name)
        except KeyError:
            continue  # the model, a container of several stages, a module without weights (ReLU)
        assert m.training != (stage is not None and stage < frozen_stages), name
    before = copy.deepcopy(model.state_dict())
    outs = model(torch.rand(2, 3, H, W))
    if any(o.requires_grad for o in outs):
        random_projection_loss(outs).backward()
    # weight decay moves every parameter that got a gradient at all, even a zero one
    torch.optim.SGD(model.parameters(), lr=1., weight_decay=0.1).step()
    after = model.state_dict()
    frozen_keys = [k for k in before if frozen(k)]
    assert (frozen_stages < 0) == (not frozen_keys)
    for k in frozen_keys:
        assert torch.equal(before[k], after[k]), k
    first_unfrozen = [(n, p) for n, p in model.named_parameters() if row.stage(n) == frozen_stages]
    assert first_unfrozen or frozen_stages == 4
    for name, p in first_unfrozen:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@ROWS
def test_norm_eval(row):
    """With norm_eval every BatchNorm stays in eval mode and keeps its statistics in a train-mode
    forward while the rest trains; without it the statistics move."""
    x = torch.rand(2, 3, H, W)
    for norm_eval in (True, False):
        model = row.build(norm_eval=norm_eval)
        model.train()
        bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        assert bns
        assert all(bn.training != norm_eval for bn in bns)
        assert all(m.training for m in model.modules() if not isinstance(m, _BatchNorm))
        stats = copy.deepcopy([bn.state_dict() for bn in bns])
        model(x)
        unchanged = [all(torch.equal(v, s[k]) for k, v in bn.state_dict().items()) for bn, s in zip(bns, stats)]
        assert all(unchanged) if norm_eval else not any(unchanged)


@ROWS
def test_with_cp(row, checkpoint_calls):
    """One non-reentrant checkpoint per block in a training forward, none without autograd; the
    same outputs and the same, non-zero, gradients as without ``with_cp``."""
    ref = row.build().train()
    cp_model = row.build(with_cp=True).train()
    cp_model.load_state_dict(ref.state_dict())
    x = torch.rand(2, 3, H, W)
    outs_ref = ref(x)
    assert not checkpoint_calls
    outs_cp = cp_model(x)
    assert checkpoint_calls == [False] * row.num_blocks
    for a, b in zip(outs_ref, outs_cp):
        torch.testing.assert_close(a, b)
    random_projection_loss(outs_ref).backward()
    random_projection_loss(outs_cp).backward()
    for (name, p_ref), p_cp in zip(ref.named_parameters(), cp_model.parameters()):
        assert p_ref.grad is not None and p_ref.grad.abs().sum() > 0, name
        torch.testing.assert_close(p_ref.grad, p_cp.grad, msg=name)
    checkpoint_calls.clear()
    with torch.no_grad():
        cp_model(x)
        cp_model.eval()(x)
    assert not checkpoint_calls


def randomised_state(model):
    gen = torch.Generator().manual_seed(7)
    return {k: torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
            for k, v in model.state_dict().items()}


@ROWS
def test_pretrained_with_prefix_loads_a_classifier_checkpoint(row, tmp_path):
    """A classifier's checkpoint (a backbone returning the last stage, and a head) loads into a
    detector's backbone (all stages): every tensor under the prefix arrives unchanged, the rest of
    the file is ignored, and only the layers a checkpoint may lack (``init_only_prefixes``) keep
    their init."""
    state = randomised_state(row.build(out_indices=(3, )))
    ckpt = tmp_path / 'cls.pth'
    torch.save({'state_dict': {**{f'backbone.{k}': v for k, v in state.items()},
                               'head.fc.weight': torch.zeros(10, row.channels[3])}, 'meta': {}}, ckpt)
    model = row.build(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), prefix='backbone.'))
    model.init_weights()
    loaded = model.state_dict()
    assert all(k.startswith(model.init_only_prefixes) for k in loaded.keys() - state.keys())
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k


@ROWS
@pytest.mark.parametrize('change, match', [
    ('no prefix', 'missing keys.*set `prefix`'),
    ('wrong prefix', "no key .* starts with prefix 'neck.'"),
    ('missing key', '1 missing keys'),
    ('unexpected key', '1 unexpected keys'),
    ('other shape', 'other shapes.*check `arch`'),
])
def test_pretrained_mismatch_raises(row, tmp_path, change, match):
    state = {f'backbone.{k}': v for k, v in row.build().state_dict().items()}
    first = next(iter(state))  # the stem's first tensor
    prefix = 'backbone.'
    if change == 'no prefix':
        prefix = None
    elif change == 'wrong prefix':
        prefix = 'neck.'
    elif change == 'missing key':
        del state[first]
    elif change == 'unexpected key':
        state['backbone.extra.weight'] = torch.zeros(1)
    else:
        state[first] = torch.cat([state[first]] * 2)
    ckpt = tmp_path / 'det.pth'
    torch.save({'state_dict': state}, ckpt)
    model = row.build(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), prefix=prefix))
    with pytest.raises(ValueError, match=f'(?s){row.name}: .*{match}'):
        model.init_weights()


@ROWS
def test_bad_input_raises_naming_the_model(row):
    model = row.build().eval()
    with pytest.raises(ValueError, match=rf'{row.name} .*\(B, C, H, W\)'):
        model(torch.rand(3, H, W))
    with pytest.raises(ValueError, match=f'{row.name} .*3-channel inputs, got 1'):
        model(torch.rand(1, 1, H, W))
    size = row.min_size or 1
    if row.min_size:
        with pytest.raises(ValueError, match=f'{row.name} .*at least {size}x{size}'):
            model(torch.rand(1, 3, size - 1, W))
        with pytest.raises(ValueError, match=f'{row.name} .*at least {size}x{size}'):
            model(torch.rand(1, 3, H, size - 1))
    with torch.no_grad():
        assert len(model(torch.rand(1, 3, size, size))) == 4  # the smallest size works


@ROWS
@pytest.mark.parametrize('kwargs, error, match', [
    (dict(arch='huge'), KeyError, "unknown arch 'huge'"),
    (dict(out_indices=(4, )), ValueError, 'out of range'),
    (dict(out_indices=(0, -4)), ValueError, 'duplicate'),
    (dict(out_indices=()), TypeError, 'non-empty'),
    (dict(frozen_stages=5), ValueError, 'frozen_stages'),
    (dict(frozen_stages=-2), ValueError, 'frozen_stages'),
])
def test_bad_arguments_raise_naming_the_model(row, kwargs, error, match):
    with torch.device('meta'), pytest.raises(error, match=f'{row.name}: .*{match}'):
        row.cls(**dict(row.cfg, **kwargs))


@ROWS
@pytest.mark.parametrize('depths, match', [((1, 1, 0, 1), 'positive ints'), ((1, 1), '4 values each')])
def test_bad_custom_arch_raises_naming_the_model(row, depths, match):
    with torch.device('meta'), pytest.raises(ValueError, match=f'{row.name}: .*{match}'):
        row.cls(**dict(row.cfg, arch=dict(row.cfg['arch'], depths=depths)))


@ROWS
def test_builds_from_mmdet_mmseg_mmpretrain_registries(row):
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as CLS
    from mmseg.registry import MODELS as SEG
    for registry in (DET, SEG, CLS):
        model = registry.build(dict(type=row.name, **row.config(out_indices=(3, ))))
        assert type(model) is row.cls and model.out_channels == [row.channels[3]]
