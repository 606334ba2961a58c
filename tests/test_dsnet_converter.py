"""tools/model_converters/dsnet_to_mmvit.py against PaddleClas's own DS-Net.

The oracle is ``ppcls/arch/backbone/model_zoo/dsnet.py`` of the ``paddleclas`` wheel
(``tests/paddle_reference.py``), built with random weights and written with ``paddle.save`` as a
``.pdparams`` file, exactly as PaddleClas publishes its weights. The real tool converts it; the
classifier checkpoint loads strictly into the mmpretrain ``ImageClassifier`` of
``configs/_base_/models/dsnet_classifier.py``, and eval logits are compared (max abs diff
<= 1e-4 x the largest |logit|).

Input sizes: the reference builds with ``img_size=S`` (its patch embeddings assert the size) and
takes square inputs only (``img_size // 4`` needs an int). Its convolutions floor like ours, so
any S passes the asserts; the global stream of stage 4 is resized to ``(S // 32) // 2``, which is
0 for S < 64, where Paddle's interpolation fails (tested). So it accepts every square S >= 64.
For 64 <= S < 128 that stage-4 grid is 1x1, and there the two frameworks resize differently:
Paddle's bilinear kernel takes the first row/column when an output side is 1 (its ratio is 0 for
a 1-pixel output), PyTorch (and so SteveTsui/DS-Net and this package) samples the half-pixel
centre (the mean of a 2x2 map). We keep PyTorch's; at those sizes the test shows that the logits
differ, and that they agree once only that one resize follows Paddle's rule (:func:`paddle_resize`).
Compared: 224 for every arch; tiny at 64 and 100 (1x1 grid, with Paddle's rule), 128 (the
smallest size with a 2x2 grid) and 130 (maps 32/16/8/4, not a multiple of 32); tiny at 288 (larger than trained); small at 160.

The SteveTsui/DS-Net layout (DeiT ``{'model': ...}`` checkpoints of the same ``MixVisionTransformer``
in PyTorch) is made from the Paddle state dict by the renaming its PyTorch modules imply (see
:func:`steve_state_from_paddle`): ``_mean``/``_variance`` -> ``running_mean``/``running_var``, a
``num_batches_tracked`` per BatchNorm, the five ``nn.Linear`` weights transposed to ``(out, in)``,
every other key and array unchanged.
"""
import argparse
import pickle
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from converter_cli import run_converter
from paddle_reference import build_reference, reference_logits

ROOT = Path(__file__).resolve().parents[1]
CONVERTER = ROOT / 'tools/model_converters/dsnet_to_mmvit.py'
CLASSIFIER_CFG = ROOT / 'configs/_base_/models/dsnet_classifier.py'
LINEAR = ('channel_up', 'cross_channel_up_sa', 'fuse_channel_conv', 'fuse_channel_sa', 'head')
TOL = 1e-4  # max abs diff relative to max |logit|
# (arch, seed, sizes besides 224): base once at 224, the other sizes on tiny/small
CASES = {'tiny': (1, (128, 130, 288)), 'small': (2, (160, )), 'base': (3, ())}
STEVE_ARCHS = ('tiny', 'small')  # the SteveTsui/DS-Net release has no base model
ONE_PIXEL_SIZES = (64, 100)  # 64 <= S < 128: stage-4 global grid 1x1

pytestmark = pytest.mark.usefixtures('one_thread')


def run_tool(*argv) -> str:
    """Run the converter script as ``python dsnet_to_mmvit.py ARGS`` would, in this process;
    return what it printed."""
    return run_converter('dsnet_to_mmvit', *argv)


def load_converter():
    return runpy.run_path(str(CONVERTER), run_name='dsnet_to_mmvit')


def our_model(arch: str, checkpoint: Path):
    """The mmpretrain ImageClassifier the converted classifier checkpoint targets, loaded strictly."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    import mmvit_hybrid  # noqa: F401  (registers DSNet)
    cfg = Config.fromfile(str(CLASSIFIER_CFG)).model
    cfg.backbone.arch = arch
    model = MODELS.build(cfg)
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
    model.load_state_dict(state, strict=True)
    return model.eval()


def steve_state_from_paddle(paddle_state: dict) -> dict:
    """The SteveTsui/DS-Net (PyTorch) state dict of the same weights."""
    state = {}
    for key, value in paddle_state.items():
        tensor = torch.from_numpy(np.asarray(value).copy())
        module, _, name = key.rpartition('.')
        if name in ('_mean', '_variance'):
            state[f'{module}.running_{name[1:].replace("variance", "var")}'] = tensor
            if name == '_mean':
                state[f'{module}.num_batches_tracked'] = torch.tensor(1000, dtype=torch.long)
        elif name == 'weight' and module.rpartition('.')[2] in LINEAR:
            state[key] = tensor.t().contiguous()
        else:
            state[key] = tensor
    return state


def compare(ours, ref_model, size: int, seed: int):
    images = np.random.RandomState(seed + size).standard_normal((1, 3, size, size)).astype(np.float32)
    expected = reference_logits(ref_model, images)
    with torch.no_grad():
        got = ours(torch.from_numpy(images), mode='tensor').numpy()
    scale = np.abs(expected).max()
    assert scale > 0.1, 'degenerate reference logits'
    err = np.abs(got - expected).max() / scale
    assert err <= TOL, f'{size}x{size}: max abs diff {err:.2e} of the logit scale'


_CONVERTED = {}


def make_converted(arch: str, tmp_path_factory) -> dict:
    """Reference model of one arch with random weights, its .pdparams, the tool's outputs (cached)."""
    if arch not in _CONVERTED:
        import paddle
        seed, sizes = CASES[arch]
        tmp = tmp_path_factory.mktemp(f'dsnet_{arch}')
        ref = build_reference(arch, seed=seed)
        src = tmp / f'DSNet_{arch}_pretrained.pdparams'
        paddle.save(ref.state_dict(), str(src))
        dst = tmp / f'dsnet_{arch}.pth'
        report = run_tool(src, dst)
        _CONVERTED[arch] = dict(arch=arch, seed=seed, sizes=sizes, ref=ref, src=src, dst=dst, tmp=tmp, report=report)
    return _CONVERTED[arch]


@pytest.fixture(scope='module', params=list(CASES))
def converted(request, tmp_path_factory):
    return make_converted(request.param, tmp_path_factory)


def test_pdparams_logits_match_paddleclas(converted):
    arch, seed = converted['arch'], converted['seed']
    ours = our_model(arch, converted['dst'])
    compare(ours, converted['ref'], 224, seed)
    weights = converted['ref'].state_dict()
    for size in converted['sizes']:
        ref = build_reference(arch, img_size=size, seed=seed + 100)
        ref.set_state_dict(weights)
        ref.eval()
        compare(ours, ref, size, seed)


def paddle_resize(interpolate):
    """``interpolate`` with Paddle's rule for an output side of 1: take the first row/column."""
    def resize(x, size, **kwargs):
        if size[0] == 1:
            x = x[:, :, :1]
        if size[1] == 1:
            x = x[:, :, :, :1]
        return interpolate(x, size=size, **kwargs)
    return resize


def test_one_pixel_global_grid_differs_only_by_paddles_resize_rule(tmp_path_factory, monkeypatch):
    import types
    from mmvit_hybrid.models.layers import dual_stream
    tiny = make_converted('tiny', tmp_path_factory)
    ours = our_model('tiny', tiny['dst'])
    refs = {}
    for size in ONE_PIXEL_SIZES:
        refs[size] = build_reference('tiny', img_size=size, seed=5)
        refs[size].set_state_dict(tiny['ref'].state_dict())
        refs[size].eval()
    with pytest.raises(AssertionError, match='max abs diff'):
        compare(ours, refs[100], 100, tiny['seed'])
    shim = types.SimpleNamespace(**{k: getattr(dual_stream.F, k) for k in dir(dual_stream.F) if not k.startswith('__')})
    shim.interpolate = paddle_resize(dual_stream.F.interpolate)
    monkeypatch.setattr(dual_stream, 'F', shim)
    for size, ref in refs.items():
        compare(ours, ref, size, tiny['seed'])


@pytest.mark.parametrize('arch', STEVE_ARCHS)
def test_steve_layout_converts_to_the_same_tensors(arch, tmp_path_factory):
    """DeiT-layout checkpoint (with the optimizer, epoch, EMA and argparse args DeiT saves)."""
    converted = make_converted(arch, tmp_path_factory)
    steve = steve_state_from_paddle({k: v.numpy() for k, v in converted['ref'].state_dict().items()})
    src = converted['tmp'] / 'steve.pth'
    extra = dict(model_ema={k: v + 1 if v.is_floating_point() else v for k, v in steve.items()}) if arch == 'tiny' else {}
    torch.save(dict(model=steve, optimizer=dict(state={}, param_groups=[]), epoch=299,
                    args=argparse.Namespace(model=f'ds_net_{arch}', drop_path=0.1), **extra), src)
    dst = converted['tmp'] / 'from_steve.pth'
    out = run_tool(src, dst)
    assert 'SteveTsui/DS-Net' in out and 'newly initialised: 0 tensors' in out
    dropped = ['optimizer', 'epoch', 'args'] + (['model_ema'] if arch == 'tiny' else [])
    assert f'dropped: {len(dropped)} entries' in out
    assert all(f'\n  {k}\n' in out + '\n' for k in dropped), out[-300:]
    from_paddle = torch.load(converted['dst'], weights_only=True)['state_dict']
    from_steve = torch.load(dst, weights_only=True)['state_dict']
    assert from_steve.keys() == from_paddle.keys()
    for key, value in from_paddle.items():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(from_steve[key], value), key
    if arch == 'tiny':  # and directly against the reference, at two sizes
        ours = our_model('tiny', dst)
        compare(ours, converted['ref'], 224, converted['seed'])
        ref = build_reference('tiny', img_size=130)
        ref.set_state_dict(converted['ref'].state_dict())
        compare(ours, ref.eval(), 130, converted['seed'])
        # --ema takes the EMA weights
        run_tool(src, converted['tmp'] / 'ema.pth', '--ema', '-q')
        ema = torch.load(converted['tmp'] / 'ema.pth', weights_only=True)['state_dict']
        assert torch.equal(ema['backbone.norm.weight'], from_steve['backbone.norm.weight'] + 1)


def test_report_and_backbone_checkpoint(converted):
    """Counts against the reference's own state dict; the det/seg file loads with prefix."""
    from mmvit_hybrid.models import DSNet
    ref_keys = list(converted['ref'].state_dict())
    num_bn = sum(k.endswith('._mean') for k in ref_keys)
    out = converted['report']
    assert f"DSNet arch '{converted['arch']}'" in out
    assert f'copied: {len(ref_keys)} tensors' in out
    assert f'newly initialised: {num_bn} tensors' in out and 'dropped: 1 entries' in out
    assert 'StructuredToParameterName@@' in out
    assert 'blocks1.0.channel_up.weight -> backbone.stages.0.blocks.0.global_qkv.weight' in out
    backbone_file = converted['tmp'] / f'dsnet_{converted["arch"]}_backbone.pth'
    saved = torch.load(backbone_file, weights_only=True)
    assert not any(k.startswith('head.') for k in saved['state_dict'])
    assert saved['meta']['dsnet_arch'] == converted['arch']
    model = DSNet(arch=converted['arch'], out_indices=(3, ),
                  init_cfg=dict(type='Pretrained', checkpoint=str(backbone_file), prefix='backbone.'))
    model.init_weights()  # strict
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved['state_dict'][f'backbone.{key}']), key


def test_reference_accepts_only_square_inputs_of_at_least_64():
    """The size range the parity tests cover is the reference's (ours also runs below 64)."""
    ref = build_reference('tiny', img_size=63)
    images = np.zeros((1, 3, 63, 63), np.float32)
    with pytest.raises(Exception):
        reference_logits(ref, images)
    with pytest.raises(AssertionError, match="doesn't match model"):
        reference_logits(build_reference('tiny', img_size=64), np.zeros((1, 3, 64, 96), np.float32))
    with pytest.raises(TypeError):
        build_reference('tiny', img_size=(64, 96))


def test_other_layouts_get_an_error_naming_the_expected_ones(tmp_path):
    tool = load_converter()
    layouts = r'(?s)PaddleClas DSNet_\*\.pdparams.*SteveTsui/DS-Net \.pth'
    with pytest.raises(ValueError, match=layouts):  # e.g. an official VOLO checkpoint
        tool['convert'](dict(model={'network.0.0.attn.v.weight': torch.zeros(4, 4)}))
    with pytest.raises(ValueError, match="already in this package's layout"):
        tool['convert']({'state_dict': {'backbone.stages.0.downsample.weight': torch.zeros(1)}})
    path = tmp_path / 'evil.pdparams'
    path.write_bytes(pickle.dumps({'x': argparse.Namespace()}))
    with pytest.raises(pickle.UnpicklingError, match=r'needs argparse\.Namespace'):
        tool['load_source'](str(path))
    path.write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match=layouts):
        tool['load_source'](str(path))
    # a Paddle state dict missing a tensor, or with one of another shape
    ref = build_reference('tiny').state_dict()
    paddle_state = {k: v.numpy() for k, v in ref.items()}
    with pytest.raises(ValueError, match=r'1 tensors missing.*stages\.0\.blocks\.0\.cpe\.weight'):
        tool['convert']({k: v for k, v in paddle_state.items() if k != 'blocks1.0.pos_embed.weight'})
    bad = dict(paddle_state, **{'blocks1.0.conv1.weight': np.zeros((64, 64, 3, 3), np.float32)})
    with pytest.raises(ValueError, match=r'of other shapes.*proj_in\.weight'):
        tool['convert'](bad)
    with pytest.raises(ValueError, match=r'match no DS-Net arch'):
        tool['convert']({k: v for k, v in paddle_state.items() if not k.startswith('blocks4.')})


def test_mask_rcnn_config_loads_the_converted_backbone(tmp_path_factory):
    """The det config's init_cfg path: build, init_weights, the backbone holds the checkpoint."""
    from mmengine.config import Config
    from mmdet.registry import MODELS
    import mmvit_hybrid  # noqa: F401
    tiny = make_converted('tiny', tmp_path_factory)
    backbone_file = tiny['tmp'] / 'dsnet_tiny_backbone.pth'
    cfg = Config.fromfile(str(ROOT / 'configs/dsnet/mask_rcnn_dsnet_t_coco.py'))
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(backbone_file), prefix='backbone.')
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    saved = torch.load(backbone_file, weights_only=True)['state_dict']
    state = detector.backbone.state_dict()
    assert len(state) == len(saved)
    for key, value in state.items():
        assert torch.equal(value, saved[f'backbone.{key}']), key


def test_per_stage_drop_path_schedule_is_the_references(tmp_path_factory):
    """``drop_path_schedule='per_stage'`` gives every block the reference's rate; 'linear' does not."""
    from mmvit_hybrid.models import DSNet
    ref = make_converted('tiny', tmp_path_factory)['ref']  # the reference's default drop_path_rate=0.1
    ref_rates = [[getattr(block.drop_path, 'drop_prob', 0.) for block in getattr(ref, f'blocks{s}')]
                 for s in range(1, 5)]

    def rates(model):
        return [[getattr(block.drop_path, 'drop_prob', 0.) for block in stage.blocks] for stage in model.stages]

    with torch.device('meta'):
        per_stage = DSNet(arch='tiny', drop_path_rate=0.1, drop_path_schedule='per_stage')
        linear = DSNet(arch='tiny', drop_path_rate=0.1)
    assert np.allclose(sum(rates(per_stage), []), sum(ref_rates, []), atol=1e-7)
    assert max(sum(rates(linear), [])) == pytest.approx(0.1)
    assert max(sum(ref_rates, [])) < 0.05  # the reference never reaches its nominal rate
    with pytest.raises(ValueError, match='drop_path_schedule must be one of'):
        DSNet(arch='tiny', drop_path_schedule='stage')


def test_unconverted_reference_checkpoint_errors_name_the_converter(tmp_path_factory):
    """A SteveTsui/DS-Net file given as is: the backbone's init_cfg and the runner's
    CheckpointMatchHook both stop and name tools/model_converters/dsnet_to_mmvit.py."""
    from mmvit_hybrid.engine.hooks.checkpoint_match_hook import CheckpointMatchHook
    from mmvit_hybrid.models import DSNet
    tiny = make_converted('tiny', tmp_path_factory)
    steve = steve_state_from_paddle({k: v.numpy() for k, v in tiny['ref'].state_dict().items()})
    src = tiny['tmp'] / 'steve_raw.pth'
    torch.save(dict(model=steve), src)
    model = DSNet(arch='tiny', out_indices=(3, ), init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    with pytest.raises(ValueError, match=r'(?s)does not match this model.*dsnet_to_mmvit\.py'):
        model.init_weights()
    classifier = our_model('tiny', tiny['dst'])
    runner = argparse.Namespace(model=classifier)
    with pytest.raises(ValueError, match=r'(?s)SteveTsui/DS-Net.*convert it first with python '
                                         r'tools/model_converters/dsnet_to_mmvit\.py'):
        CheckpointMatchHook().after_load_checkpoint(runner, dict(model=steve))
    # the converted classifier checkpoint passes the same hook
    CheckpointMatchHook().after_load_checkpoint(runner, torch.load(tiny['dst'], weights_only=True))
