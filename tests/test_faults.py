"""Bad input gives a clear error that says what to change, and nothing already saved is lost.

Faults tried: images with the wrong number of channels, images smaller than a backbone's minimum,
NaN/inf losses, a checkpoint of another architecture, a corrupt (truncated) annotation file, an
annotation file without images, unknown arch names and bad argument values for every module this
package registers. The tool-level faults run tools/train.py or tools/test.py in their own processes
(forked from a warm interpreter, tests/warm_tools.py) with a user's arguments; see
docs/robustness.md for the same commands by hand.
"""
import json
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS
from mmengine.runner.checkpoint import _load_checkpoint
from mmpretrain.registry import BATCH_AUGMENTS
from warm_tools import ONE_THREAD, run_tool

import mmvit_hybrid  # noqa: F401
from mmvit_hybrid.engine import (CheckpointMatchHook, InputCheckHook, InvalidLossHook,
                                 check_annotation_files)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs/demo/mask_rcnn_dsnet_t_demo.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

# the smallest arch of every backbone, cheap to build
BACKBONES = {
    'DSNet': dict(arch='tiny'),
    'VOLO': dict(arch='d1'),
    'BoTNet': dict(arch='50'),
    'DMFormer': dict(arch='s'),
}


# the outputs at the minimum input (BoTNet: 8x8): (1, C, H, W) per stage, by each backbone's
# downsampling rule: DS-Net and DMFormer 32x32 at strides 4-32, VOLO 16x16 at its native strides
# 8/16/16/16, BoTNet 8 -> 4 -> 2 (stem) and ceil(2 / 2) = 1 after
AT_MINIMUM = {
    'DSNet': [(1, 64, 8, 8), (1, 128, 4, 4), (1, 320, 2, 2), (1, 512, 1, 1)],
    'DMFormer': [(1, c, 32 // s, 32 // s) for c, s in zip((64, 128, 320, 512), (4, 8, 16, 32))],
    'VOLO': [(1, 192, 2, 2), (1, 384, 1, 1), (1, 384, 1, 1), (1, 384, 1, 1)],
    'BoTNet': [(1, 256, 2, 2), (1, 512, 1, 1), (1, 1024, 1, 1), (1, 2048, 1, 1)],
}


def build(name, **kwargs):
    registry = BATCH_AUGMENTS if name in BATCH_AUGMENTS.module_dict else MODELS
    return registry.build(dict(type=name, **{**BACKBONES.get(name, {}), **kwargs}))


# ------------------------------------------------------------------ images
@pytest.mark.parametrize('name', sorted(BACKBONES))
@pytest.mark.parametrize('channels', [1, 4])
def test_wrong_number_of_channels(name, channels):
    model = build(name).eval()
    with pytest.raises(ValueError) as info:
        model(torch.rand(1, channels, 64, 64))
    msg = str(info.value)
    assert f'{name} was built for 3-channel inputs, got {channels} channels' in msg
    assert 'set in_channels or convert the image' in msg


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_image_below_minimum_size(name):
    """Below the backbone's minimum: a clear error that says to pad or resize; at it: works."""
    model = build(name).eval()
    minimum = getattr(model, 'min_input_size', None)
    with torch.no_grad():
        if minimum is None:  # every stride-2 layer rounds up (BoTNet: any size >= 1 works)
            outs = model(torch.rand(1, 3, 8, 8))
        else:
            with pytest.raises(ValueError) as info:
                model(torch.rand(1, 3, minimum - 1, minimum + 5))
            assert f'needs inputs of at least {minimum}x{minimum}' in str(info.value)
            assert 'pad or resize' in str(info.value)
            outs = model(torch.rand(1, 3, minimum, minimum))
    assert [tuple(o.shape) for o in outs] == AT_MINIMUM[name]


@pytest.fixture(scope='module')
def detector():
    """The demo Mask R-CNN (DS-Net-T), built once."""
    from mmdet.utils import register_all_modules
    register_all_modules()
    return MODELS.build(Config.fromfile(CONFIG).model).eval()


def test_detector_pads_small_images(detector):
    """In a detection config, mmdet's data preprocessor pads to a multiple of 32: a 20x20 image
    reaches the backbone as 32x32 and prediction works."""
    from mmdet.structures import DetDataSample
    model = detector
    sample = DetDataSample(metainfo=dict(img_shape=(20, 20), ori_shape=(20, 20),
                                         scale_factor=(1., 1.)))
    data = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (3, 20, 20),
                                                              dtype=torch.uint8)],
                                        data_samples=[sample]))
    assert data['inputs'].shape[-2:] == (32, 32)
    with torch.no_grad():
        [pred] = model(**data, mode='predict')
    assert 'bboxes' in pred.pred_instances


@pytest.mark.parametrize('channels', [1, 4])
def test_grayscale_or_rgba_batch_is_named_before_the_preprocessor(detector, channels):
    """Without InputCheckHook a 1-channel image fails in mmengine's preprocessor with
    ``IndexError: index 2 is out of bounds`` (the BGR->RGB swap), and a 4-channel one silently
    loses a channel there."""
    from mmdet.structures import DetDataSample

    class Runner:
        model = detector

    sample = DetDataSample(metainfo=dict(img_path='data/x/000007.png'))
    batch = dict(inputs=[torch.zeros(3, 32, 32, dtype=torch.uint8),
                         torch.zeros(channels, 32, 32, dtype=torch.uint8)],
                 data_samples=[DetDataSample(), sample])
    if channels == 1:
        with pytest.raises(IndexError):
            detector.data_preprocessor(batch)  # what the user would get
    else:
        assert detector.data_preprocessor(batch)['inputs'].shape[1] == 3  # alpha dropped silently
    with pytest.raises(ValueError) as info:
        InputCheckHook().before_train_iter(Runner(), 0, batch)
    msg = str(info.value)
    assert f'train image data/x/000007.png has {channels} channels but the model takes 3' in msg
    assert "color_type='color'" in msg
    hook = InputCheckHook()
    hook.before_val_iter(Runner(), 0, dict(inputs=[torch.zeros(3, 32, 32)]))  # fine
    hook.before_val_iter(Runner(), 1, batch)  # only the first batch is checked (max_checks=1)


# ------------------------------------------------------------------ config values
BAD_VALUES = [
    # every backbone: unknown arch, bad in_channels / out_indices / frozen_stages / drop_path_rate
    *[(name, dict(arch='nope'), KeyError, f"{name}: unknown arch 'nope'; choose one of")
      for name in BACKBONES],
    *[(name, dict(in_channels=0), ValueError, f'{name}: in_channels must be a positive int')
      for name in BACKBONES],
    *[(name, dict(out_indices=(4, )), ValueError, f'{name}: out_indices entry 4 is out of range')
      for name in BACKBONES],
    *[(name, dict(frozen_stages=9), ValueError, f'{name}: frozen_stages must be an int in [-1, 4]')
      for name in BACKBONES],
    *[(name, dict(drop_path_rate=1.5), ValueError, f'{name}: drop_path_rate must be in [0, 1)')
      for name in ('DSNet', 'VOLO', 'DMFormer')],  # BoTNet has no stochastic depth
    ('DSNet', dict(arch=3), TypeError, 'DSNet: arch must be a str or dict'),
    ('DSNet', dict(arch=dict(embed_dims=[64] * 4)), KeyError, 'DSNet: a custom arch dict needs'),
    ('DSNet', dict(global_strides=(8, 4)), ValueError, 'DSNet: global_strides needs one entry'),
    ('DSNet', dict(attn_drop_rate=-0.1), ValueError, 'DSNet: attn_drop_rate must be in [0, 1)'),
    ('DSNet', dict(mlp_ratio=0), ValueError, 'DSNet: mlp_ratio must be > 0'),
    ('VOLO', dict(out_type='nope'), ValueError, "VOLO: unknown out_type 'nope'"),
    ('VOLO', dict(img_size=7), ValueError, 'VOLO: img_size must be an int or (H, W) of at least'),
    ('BoTNet', dict(img_size=-1), ValueError, 'BoTNet: img_size must be an int or (H, W)'),
    ('BoTNet', dict(num_attn_blocks=9), ValueError, 'BoTNet: num_attn_blocks must be an int in'),
    ('BoTNet', dict(attn_impl='nope'), ValueError, "unknown attn_impl 'nope'"),
    ('DMFormer', dict(mixer_cfg=dict(type='DMA', gate='level')), TypeError, "unexpected keyword argument 'gate'"),
    ('DMA', dict(embed_dims=64, kernel_sizes=(3, 4, 7)), ValueError, 'DMA needs one odd kernel size per dilation'),
    ('DMAAblation', dict(embed_dims=64, gate='nope'), ValueError, "DMAAblation: unknown gate 'nope'"),
    ('DMAAblation', dict(embed_dims=64, gate_act='nope'), ValueError, "DMAAblation: unknown gate_act 'nope'"),
    ('DMFormer', dict(mlp_ratio=-1), ValueError, 'DMFormer: mlp_ratio must be > 0'),
    ('DSFPN', dict(in_channels=[64, 128, 320, 512], out_channels=64, num_outs=5,
                   global_strides=(8, 4)), ValueError, 'DSFPN: global_strides needs one entry'),
    ('DSFPN', dict(in_channels=[64, 128, 320, 512], out_channels=63, num_outs=5), ValueError,
     'needs embed_dims even'),
    ('VOLOHead', dict(num_classes=0, in_channels=384), ValueError,
     'VOLOHead: num_classes must be a positive int'),
    ('VOLOHead', dict(num_classes=10, in_channels=384, aux_weight=-1), ValueError,
     'aux_weight and token_loss_weight must be >= 0'),
    ('MixTokenDataPreprocessor', dict(num_classes=10, mix_token=dict(type='Mixup', alpha=1.0)), TypeError,
     'MixTokenDataPreprocessor: mix_token must be a MixToken or its config'),
    ('MixToken', dict(alpha=0), ValueError, 'MixToken: alpha must be a positive number'),
    ('MixToken', dict(token_stride=0), ValueError, 'MixToken: token_stride must be a positive int'),
]


@pytest.mark.parametrize('name, kwargs, error, message', BAD_VALUES,
                         ids=[f'{n}-{"-".join(map(str, k))}' for n, k, *_ in BAD_VALUES])
def test_bad_config_value(name, kwargs, error, message):
    with pytest.raises(error) as info:
        build(name, **kwargs)
    assert message in str(info.value)


def test_every_registered_module_is_covered():
    """A new module of the package must get bad-value cases above."""
    ours = {n for registry in (MODELS, BATCH_AUGMENTS) for n, c in registry.module_dict.items()
            if c.__module__.startswith('mmvit_hybrid')}
    assert ours == {name for name, *_ in BAD_VALUES}


# ------------------------------------------------------------------ checkpoints
def fake_official_volo_checkpoint(path):
    """Keys as in sail-sg/volo's released files (``{'model': ...}``)."""
    torch.save(dict(model={'patch_embed.conv.0.weight': torch.zeros(64, 3, 7, 7),
                           'network.0.0.attn.v.weight': torch.zeros(192, 192),
                           'network.2.0.attn.qkv.weight': torch.zeros(1152, 384),
                           'head.weight': torch.zeros(1000, 384)}), path)


@pytest.mark.parametrize('name, converter', [
    ('VOLO', 'tools/model_converters/volo_to_mmvit.py'),
    ('BoTNet', 'tools/model_converters/resnet_to_botnet.py'),
    ('DSNet', 'tools/model_converters/dsnet_to_mmvit.py'),
])
def test_backbone_pretrained_from_other_format_names_converter(tmp_path, name, converter):
    """Third-party weights given to a backbone without conversion."""
    path = str(tmp_path / 'third_party.pth')
    fake_official_volo_checkpoint(path)
    model = build(name, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError) as info:
        model.init_weights()
    assert 'does not match this model' in str(info.value)
    assert converter in str(info.value)


class _Runner:
    """What CheckpointMatchHook reads from a runner."""

    def __init__(self, model):
        self.model = model


def test_checkpoint_match_hook_names_converter():
    det = torch.nn.Module()
    det.backbone = torch.nn.Conv2d(3, 8, 3)
    ckpt = dict(model={'patch_embed.conv.0.weight': torch.zeros(1), 'network.0.0.x': torch.zeros(1)})
    with pytest.raises(ValueError) as info:
        CheckpointMatchHook().after_load_checkpoint(_Runner(det), ckpt)
    msg = str(info.value)
    assert 'does not fit this model (Module with a Conv2d backbone)' in msg
    assert 'only 0 of its 2 tensors' in msg
    assert 'tools/model_converters/volo_to_mmvit.py' in msg
    resnet = {'conv1.weight': torch.zeros(1), 'layer4.2.conv2.weight': torch.zeros(1)}
    with pytest.raises(ValueError, match='resnet_to_botnet.py'):
        CheckpointMatchHook().after_load_checkpoint(_Runner(det), dict(state_dict=resnet))
    # a checkpoint of this model passes, also with a different head (fine-tuning)
    own = {f'backbone.{k}': v for k, v in det.backbone.state_dict().items()}
    CheckpointMatchHook().after_load_checkpoint(_Runner(det), dict(state_dict=own))


def test_nonfinite_loss_hook_names_iteration(tmp_path):
    class Runner:
        iter, epoch, work_dir = 6, 2, str(tmp_path)

    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    hook = InvalidLossHook()
    hook.after_train_iter(Runner(), 0, outputs=dict(loss=torch.tensor(1.), acc=torch.tensor(0.)))
    with pytest.raises(FloatingPointError) as info:
        hook.after_train_iter(Runner(), 0, outputs=dict(loss=torch.tensor(float('inf')),
                                                        loss_cls=torch.tensor(float('inf'))))
    msg = str(info.value)
    assert 'Invalid loss at iteration 7 (epoch 3): loss=inf, loss_cls=inf' in msg
    assert f'--resume {tmp_path / "epoch_2.pth"}' in msg


# ------------------------------------------------------------------ through the tools
def tool(script, *args):
    """``tools/<script>`` in its own process, forked from the warm interpreter (tests/warm_tools.py)."""
    code, out = run_tool(osp.join('tools', script), *args, env=ONE_THREAD)
    return SimpleNamespace(returncode=code, stdout=out)


def cfg_options(data_root, **extra):
    ann = osp.join(data_root, 'annotations/instances_val.json')
    opts = {}
    for loader in LOADERS:
        opts.update({f'{loader}.dataset.data_root': data_root + '/', f'{loader}.num_workers': 0,
                     f'{loader}.persistent_workers': False, f'{loader}.batch_size': 2})
    opts.update({'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann,
                 'default_hooks.logger.interval': 1, 'default_hooks.checkpoint.interval': 1,
                 'train_cfg.max_epochs': 1, 'train_cfg.val_begin': 9})
    opts.update(extra)
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('faults') / 'data')
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/misc/make_demo_coco.py'), '--out', root,
                    '--num-train', '2', '--num-val', '2', '--img-size', '64'],
                   check=True, capture_output=True)
    ann = osp.join(root, 'annotations/instances_train.json')
    with open(ann) as f:
        text = f.read()
    with open(osp.join(root, 'annotations/truncated.json'), 'w') as f:
        f.write(text[:len(text) // 2])  # as after a killed download or copy
    data = json.loads(text)
    data.update(images=[], annotations=[])
    with open(osp.join(root, 'annotations/no_images.json'), 'w') as f:
        json.dump(data, f)
    return root


def test_nan_loss_stops_training_and_keeps_last_checkpoint(data_root, tmp_path):
    work_dir = str(tmp_path)
    first = tool('train.py', CONFIG, '--work-dir', work_dir, *cfg_options(data_root))
    assert first.returncode == 0, first.stdout[-3000:]
    good = osp.join(work_dir, 'epoch_1.pth')
    with open(good, 'rb') as f:
        good_bytes = f.read()
    # epoch 2 with a NaN classification loss (a bad loss_weight, as a user could write)
    proc = tool('train.py', CONFIG, '--work-dir', work_dir, '--resume',
                *cfg_options(data_root, **{'train_cfg.max_epochs': 2,
                                           'model.roi_head.bbox_head.loss_cls.loss_weight': 'nan'}))
    assert proc.returncode != 0
    assert 'FloatingPointError: Invalid loss at iteration 2 (epoch 2): loss=nan' in proc.stdout
    assert 'loss_cls=nan' in proc.stdout
    assert f'The last checkpoint, {good}, was written before this iteration and is kept' in proc.stdout
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == good
    with open(good, 'rb') as f:
        assert f.read() == good_bytes  # untouched
    weights = _load_checkpoint(good)['state_dict']
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_checkpoint_of_other_architecture_names_converter(data_root, tmp_path):
    path = str(tmp_path / 'd1_224_84.2.pth.tar')
    fake_official_volo_checkpoint(path)
    proc = tool('test.py', CONFIG, path, '--work-dir', str(tmp_path), *cfg_options(data_root))
    assert proc.returncode != 0
    assert 'ValueError: The checkpoint does not fit this model (MaskRCNN with a DSNet backbone)' \
        in proc.stdout
    assert 'convert it first with python tools/model_converters/volo_to_mmvit.py' in proc.stdout


def train_main(monkeypatch, *args):
    """Run tools/train.py's ``main`` in this process (the checks below fail before the runner is
    built, so this shows the user's error without paying a subprocess start)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('tools_train', osp.join(ROOT, 'tools/train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse_args sets it; restored afterwards
    monkeypatch.setattr(sys, 'argv', ['train.py', *args])
    module.main()


@pytest.mark.parametrize('ann, message', [
    ('truncated.json', 'is not valid JSON (Expecting'),
    ('no_images.json', 'lists no images: nothing to train or test on'),
])
def test_bad_annotation_file(data_root, tmp_path, monkeypatch, ann, message):
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError) as info:
        train_main(monkeypatch, CONFIG, '--work-dir', str(work_dir),
                   *cfg_options(data_root, **{'train_dataloader.dataset.ann_file':
                                              f'annotations/{ann}'}))
    path = osp.join(data_root, 'annotations', ann)
    assert str(info.value).startswith(f"train_dataloader.dataset.ann_file = '{path}' {message}")
    assert not work_dir.exists()  # stopped before anything was written


def test_annotation_checks_in_process(data_root, tmp_path):
    """No images left after filter_empty_gt, an empty .txt list, and big files (tail check only)."""
    def cfg_for(ann_file, **dataset):
        return Config(dict(train_dataloader=dict(dataset=dict(
            data_root=data_root, ann_file=ann_file, **dataset))))

    no_ann = tmp_path / 'no_ann.json'
    no_ann.write_text(json.dumps(dict(images=[dict(id=1, file_name='a.png')], annotations=[])))
    with pytest.raises(ValueError, match='filter_empty_gt=True drops images without annotations'):
        check_annotation_files(cfg_for(str(no_ann), filter_cfg=dict(filter_empty_gt=True)))
    check_annotation_files(cfg_for(str(no_ann)))  # without the filter it is a valid file
    empty_txt = tmp_path / 'train.txt'
    empty_txt.write_text('\n\n')
    with pytest.raises(ValueError, match='is empty: it lists no images'):
        check_annotation_files(cfg_for(str(empty_txt)))
    truncated = osp.join(data_root, 'annotations/truncated.json')
    with pytest.raises(ValueError, match='does not end like a JSON document'):
        check_annotation_files(cfg_for(truncated), max_parse_bytes=10)
    check_annotation_files(cfg_for('annotations/instances_train.json'))  # the good file passes


def test_amp_without_gpu_is_a_clear_error(data_root, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(RuntimeError) as info:
        train_main(monkeypatch, CONFIG, '--work-dir', str(tmp_path / 'work'), '--amp',
                   *cfg_options(data_root))
    assert 'AMP (--amp, or optim_wrapper.type=AmpOptimWrapper) needs a CUDA GPU' in str(info.value)
    assert 'Drop --amp' in str(info.value)
