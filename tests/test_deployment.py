"""ONNX export (tools/deployment/pytorch2onnx.py) of every backbone family's classifier and of one
UperNet per backbone (each backbone and each model kind on both exporters, see
CLASSIFIER_EXPORTER), checked in onnxruntime against
PyTorch eval; the adaptive-pooling export hook against nn.AdaptiveAvgPool2d; the tool's error
paths (unknown config, checkpoint of another model, unsupported model type, shape below the
minimum).

Each model test writes a few-line variant of a real config (tiny arch, small heads), saves a
checkpoint the way the runner does (``mmengine.runner.checkpoint.save_checkpoint`` of
``{'meta', 'state_dict', 'message_hub'}``, with randomised weights and BN statistics so that no
layer is an identity), exports it through the tool's ``main(argv)`` with dynamic H/W, and runs
onnxruntime at the export size and at a second, different size (odd feature maps), against the
model loaded from the checkpoint, in PyTorch's own API (``mode='tensor'`` logits, ``encode_decode``,
``extract_feat``).
"""
import importlib.util
import os.path as osp

import numpy as np
import onnx  # requirements/deploy.txt, installed by make install
import onnxruntime as ort
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
pytestmark = pytest.mark.usefixtures('one_thread')


def _tool():
    spec = importlib.util.spec_from_file_location('pytorch2onnx', osp.join(ROOT, 'tools/deployment/pytorch2onnx.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = _tool()

# tiny variants of real configs: (base config, overrides as config text)
TINY_BACKBONES = {
    'dsnet': "dict(arch=dict(_delete_=True, embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]))",
    'dmformer': "dict(arch=dict(_delete_=True, embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1]))",
    'volo': "dict(arch=dict(_delete_=True, depths=[1, 1, 1, 1], embed_dims=[32, 64, 64, 64], num_heads=[2, 4, 4, 4], "
            "mlp_ratio=2, stem_channels=16))",
    'botnet': "dict(arch=dict(_delete_=True, depths=[1, 1, 1, 1], strides=[1, 2, 2, 2]), num_attn_blocks=1)",
}
WIDTHS = {'dsnet': [16, 32, 48, 64], 'dmformer': [16, 32, 48, 64], 'volo': [32, 64, 64, 64],
          'botnet': [256, 512, 1024, 2048]}
CLASSIFIERS = {'dsnet': 'configs/dsnet/dsnet_t_in1k.py', 'dmformer': 'configs/dmformer/dmformer_s_in1k.py',
               'volo': 'configs/volo/volo_d1_in1k.py', 'botnet': 'configs/botnet/botnet50_in1k.py'}
UPERNETS = {'dsnet': 'configs/dsnet/upernet_dsnet_t_ade20k.py',
            'dmformer': 'configs/dmformer/upernet_dmformer_s_ade20k.py',
            'volo': 'configs/volo/upernet_volo_d1_ade20k.py', 'botnet': 'configs/botnet/upernet_botnet50_ade20k.py'}
SIZES = [(64, 64), (72, 104)]  # export size, second size (odd maps at strides 8-32)


def write_config(tmp_path, family, task):
    """A variant config: the tiny backbone and small heads on top of the real config."""
    backbone = TINY_BACKBONES[family]
    widths = WIDTHS[family]
    if task == 'cls':
        base = CLASSIFIERS[family]
        body = f'model = dict(backbone={backbone}, head=dict(num_classes=7, in_channels={widths[-1]}))\n'
    else:
        base = UPERNETS[family]
        body = (f'model = dict(backbone={backbone},\n'
                f'    decode_head=dict(in_channels={widths}, channels=16, num_classes=5),\n'
                f'    auxiliary_head=dict(in_channels={widths[2]}, channels=8, num_classes=5))\n')
    path = tmp_path / f'{family}_{task}.py'
    path.write_text(f"_base_ = '{osp.join(ROOT, base)}'\n{body}")
    return str(path)


def randomise(model):
    """Weights away from their init: BN statistics/affines random, layer scales ~1, all else
    jittered, so that every layer (also DMFormer's 1e-5 layer-scaled blocks) shapes the output."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=gen)
            if name.endswith('running_var'):
                t.copy_(noise.abs() * 0.5 + 0.5)
            elif 'gamma' in name or (name.endswith('weight') and t.dim() == 1):
                t.copy_(1 + 0.2 * noise)
            else:
                t.add_(0.1 * noise * (t.std() if t.numel() > 1 else 1))


def save_runner_checkpoint(model, path):
    """The checkpoint layout of ``Runner.save_checkpoint`` (meta, state_dict, message_hub)."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu
    hub = MessageHub.get_instance('test_deployment')
    hub.update_scalar('train/loss', np.float32(1.5))
    save_checkpoint(dict(meta=dict(epoch=1, iter=1, seed=0, mmengine_version='0.10.7'),
                         state_dict=weights_to_cpu(model.state_dict()), message_hub=hub.state_dict()), path)


def reference(model, kind, x):
    """PyTorch eval outputs through the libraries' own API."""
    with torch.no_grad():
        if kind == 'classifier':
            return [model(x, mode='tensor')]
        if kind == 'segmentor':
            h, w = x.shape[-2:]
            meta = dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w))
            return [model.encode_decode(x, [meta] * x.shape[0])]
        return list(model.extract_feat(x))


def export_and_check(tmp_path, config, sizes=SIZES, dynamic=True, extra=()):
    """Export through the tool, run onnxruntime at every size, compare; return the ONNX path."""
    from mmvit_hybrid.deployment.export import build_model, load_config
    model, kind = build_model(load_config(config), config)
    randomise(model)
    ckpt = str(tmp_path / 'epoch_1.pth')
    save_runner_checkpoint(model, ckpt)
    out = str(tmp_path / 'model.onnx')
    argv = [config, ckpt, '--shape', *map(str, sizes[0]), '--out', out, *extra]
    assert TOOL.main(argv + (['--dynamic-shape'] if dynamic else [])) == 0
    loaded, _ = build_model(load_config(config), config)  # a fresh model, weights from the checkpoint
    loaded.load_state_dict(torch.load(ckpt, weights_only=False)['state_dict'])
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    for h, w in sizes if dynamic else sizes[:1]:
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))
        refs = reference(loaded, kind, x)
        outs = session.run(None, {'input': x.numpy()})
        assert len(outs) == len(refs)
        for ref, got in zip(refs, outs):
            assert tuple(got.shape) == tuple(ref.shape), (h, w)
            scale = ref.abs().max().item()
            assert scale > 0
            err = np.abs(got - ref.numpy()).max() / scale
            assert err <= 1e-4, f'{config} at {h}x{w}: max abs diff / scale {err:.2e}'
    return out


def op_types(path):
    return {(n.domain + '::' if n.domain else '') + n.op_type for n in onnx.load(path).graph.node}


# the classifier of each family on one exporter; with the UperNets (the tool's default exporter
# for every backbone) and test_botnet_other_exporter every backbone and every model kind runs
# through both exporters once: DS-Net and DMFormer classifiers on TorchScript (their default,
# dynamo, is the UperNet case and takes 10-20 s per export here), VOLO on dynamo only (its
# TorchScript trace bakes the outlook reshape at the export size), BoTNet on both
CLASSIFIER_EXPORTER = {'dsnet': 'torchscript', 'dmformer': 'torchscript', 'volo': 'auto', 'botnet': 'auto'}


@pytest.mark.parametrize('family', ['dsnet', 'dmformer', 'volo', 'botnet'])
def test_classifier_export(tmp_path, family):
    out = export_and_check(tmp_path, write_config(tmp_path, family, 'cls'),
                           extra=('--exporter', CLASSIFIER_EXPORTER[family]))
    ops = op_types(out)
    assert not any('::' in op for op in ops), ops  # standard ai.onnx only, no custom domain
    if family == 'volo':
        assert 'Col2Im' not in ops and {'Gather', 'MatMul'} <= ops


def test_volo_export_without_extension(tmp_path, monkeypatch):
    """Without the compiled extension the outlook op is recorded as one node (the reference as an
    opaque op) and translated like the compiled op: no Col2Im, outputs equal at two sizes, and no
    'extension is not available' warning for the exported model."""
    oa_module = importlib.import_module('mmvit_hybrid.ops.outlook_attention')
    monkeypatch.setattr(oa_module, '_EXT_AVAILABLE', False)
    monkeypatch.setattr(oa_module, '_warned', {'missing'})  # the reference runs in the checks
    calls = []
    op = oa_module.reference_op()
    monkeypatch.setattr(oa_module, 'reference_op', lambda: calls.append(1) or op)
    out = export_and_check(tmp_path, write_config(tmp_path, 'volo', 'cls'))
    ops = op_types(out)
    assert calls, 'the export did not go through the reference op'
    assert not any('::' in o for o in ops) and 'Col2Im' not in ops and {'Gather', 'MatMul'} <= ops, ops


@pytest.mark.parametrize('family', ['dsnet', 'dmformer', 'volo', 'botnet'])
def test_upernet_export(tmp_path, family):
    """Segmentor logits at the input size; the PPM's 2x2/3x3/6x6 bins run on 2x2 and 3x4 maps
    (bins larger than, and not dividing, the map) through the adaptive-pooling hook."""
    out = export_and_check(tmp_path, write_config(tmp_path, family, 'seg'))
    assert not any('::' in op for op in op_types(out))


def test_botnet_other_exporter(tmp_path):
    """BoTNet exports on both paths at dynamic sizes: the one the tool does not pick by default."""
    from mmvit_hybrid.models import BoTNet
    other = {'dynamo': 'torchscript', 'torchscript': 'dynamo'}[BoTNet.onnx_exporter[0]]
    export_and_check(tmp_path, write_config(tmp_path, 'botnet', 'cls'), extra=('--exporter', other))


@pytest.mark.parametrize('hw,bins', [((7, 13), 6), ((17, 5), (3, 2)), ((5, 4), 6), ((9, 11), (None, 4)),
                                     ((12, 12), (2, 3))])
def test_adaptive_avg_pool2d_matches_torch(hw, bins):
    """The hook's pooling against nn.AdaptiveAvgPool2d, on sizes that the bins do not divide and
    on bins larger than the map (overlapping bins)."""
    from mmvit_hybrid.deployment.hooks import adaptive_avg_pool2d
    x = torch.randn(2, 3, *hw)
    torch.testing.assert_close(adaptive_avg_pool2d(x, bins), torch.nn.AdaptiveAvgPool2d(bins)(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize('exporter', ['torchscript', 'dynamo'])
def test_adaptive_avg_pool2d_exports_dynamic(tmp_path, exporter):
    """A module with nn.AdaptiveAvgPool2d((3, 6)), exported at 13x17 under the export hooks, runs
    in onnxruntime at 13x17 and 20x9 and matches nn.AdaptiveAvgPool2d at both."""
    from mmvit_hybrid.deployment.hooks import export_mode
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.AdaptiveAvgPool2d((3, 6))).eval()
    out = str(tmp_path / 'pool.onnx')
    x = torch.randn(1, 3, 13, 17)
    with export_mode(model), torch.no_grad():
        if exporter == 'torchscript':
            torch.onnx.export(model, (x, ), out, dynamo=False, opset_version=18, input_names=['input'],
                              dynamic_axes={'input': {2: 'h', 3: 'w'}})
        else:
            dim = torch.export.Dim
            torch.onnx.export(model, (x, ), dynamo=True, opset_version=18, input_names=['input'],
                              dynamic_shapes=({2: dim('h', min=2), 3: dim('w', min=2)}, )).save(out)
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    for h, w in [(13, 17), (20, 9)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            ref = model(x)
        got = session.run(None, {'input': x.numpy()})[0]
        np.testing.assert_allclose(got, ref.numpy(), rtol=0, atol=1e-5 * ref.abs().max().item())


# ------------------------------------------------------------------------------------------ errors
def run_tool(capsys, *argv):
    """(exit code, stderr) of the tool; an ExportError must end in exit code 2, not a traceback."""
    rc = TOOL.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def test_error_unknown_config(tmp_path, capsys):
    rc, err = run_tool(capsys, tmp_path / 'no_such_config.py', '--shape', 64, 64)
    assert rc == 2 and 'no_such_config.py' in err and 'does not exist' in err
    broken = tmp_path / 'broken.py'
    broken.write_text("_base_ = 'configs/no/such_base.py'\n")
    rc, err = run_tool(capsys, broken, '--shape', 64, 64)
    assert rc == 2 and 'cannot read config' in err


def test_error_checkpoint_of_another_model(tmp_path, capsys):
    """A DS-Net checkpoint given to a DMFormer config, and one of a 7-class head to a 9-class one."""
    from mmvit_hybrid.deployment.export import build_model, load_config
    dsnet = write_config(tmp_path, 'dsnet', 'cls')
    model, _ = build_model(load_config(dsnet), dsnet)
    ckpt = tmp_path / 'dsnet.pth'
    save_runner_checkpoint(model, str(ckpt))
    rc, err = run_tool(capsys, write_config(tmp_path, 'dmformer', 'cls'), ckpt, '--shape', 64, 64,
                       '--out', tmp_path / 'x.onnx')
    assert rc == 2 and 'is not a checkpoint of this model' in err and 'DMFormer' in err and 'missing keys' in err
    nine = tmp_path / 'dsnet_9.py'
    nine.write_text(f"_base_ = '{dsnet}'\nmodel = dict(head=dict(num_classes=9))\n")
    rc, err = run_tool(capsys, nine, ckpt, '--shape', 64, 64, '--out', tmp_path / 'x.onnx')
    assert rc == 2 and '2 shape mismatches' in err and 'head.fc.weight: checkpoint (7, 64) vs model (9, 64)' in err
    assert not (tmp_path / 'x.onnx').exists()


def test_error_unsupported_model_type(tmp_path, capsys):
    other_scope = tmp_path / 'pose.py'
    other_scope.write_text("default_scope = 'mmpose'\nmodel = dict(type='TopdownPoseEstimator')\n")
    rc, err = run_tool(capsys, other_scope, '--shape', 64, 64)
    assert rc == 2 and 'unsupported model type' in err and "'mmpose'" in err
    unknown = tmp_path / 'unknown.py'
    unknown.write_text("default_scope = 'mmseg'\nmodel = dict(type='NoSuchSegmentor')\n")
    rc, err = run_tool(capsys, unknown, '--shape', 64, 64)
    assert rc == 2 and 'unsupported model type' in err and 'NoSuchSegmentor' in err


@pytest.mark.parametrize('family,shape,dynamic,minimum', [('dsnet', 31, False, 32), ('dsnet', 48, True, 64),
                                                          ('volo', 15, False, 16), ('botnet', 32, False, 33)])
def test_error_shape_below_minimum(tmp_path, capsys, family, shape, dynamic, minimum):
    argv = [write_config(tmp_path, family, 'cls'), '--shape', shape, shape + 20, '--out', tmp_path / 'x.onnx']
    rc, err = run_tool(capsys, *argv, *(['--dynamic-shape'] if dynamic else []))
    assert rc == 2 and 'below the minimum input size' in err and f'{minimum}x{minimum}' in err
    assert not (tmp_path / 'x.onnx').exists()
