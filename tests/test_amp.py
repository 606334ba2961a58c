"""Mixed precision (``--amp``): the outlook-attention op under autocast, on CPU.

* The CUDA autocast dtype pattern: ``nn.Linear`` gives a float16 ``value`` while CUDA autocast
  runs ``softmax`` in float32, so the op receives (float16 value, float32 attn). It is reproduced
  on CPU with exactly those dtypes, through the public op, the registered op and the fallback,
  and through the outlooker layer (its attention made float32 the way CUDA autocast makes it).
* bfloat16 CPU autocast end to end, forward and backward: every backbone, and one config of each
  family (Mask R-CNN, UperNet, mmpretrain classifier) with VOLO, the backbone that uses the op,
  shrunk to a tiny arch; losses and gradients finite, and the op ran in bfloat16.
"""
import importlib

import pytest
import torch
import torch.nn as nn

from mmvit_hybrid.ops import ext_available, outlook_attention, outlook_attention_reference
from tiny_backbones import TINY_BACKBONES, tiny_backbone

oa_module = importlib.import_module('mmvit_hybrid.ops.outlook_attention')
outlooker_module = importlib.import_module('mmvit_hybrid.models.layers.outlooker')

pytestmark = pytest.mark.usefixtures('one_thread')

LOW = [torch.float16, torch.bfloat16]
# ||x - ref64|| / ||ref64|| bound for results stored in float16 / bfloat16 (2^-11 / 2^-8 rounding)
REL_TOL = {torch.float16: 3e-3, torch.bfloat16: 2e-2}


def rel_err(x, ref):
    x, ref = x.double(), ref.double()
    return ((x - ref).norm() / ref.norm()).item()


def cuda_pattern_inputs(low_dtype, B=2, C=12, H=9, W=11, heads=3):
    """value in the autocast dtype (a Linear's output), attn in float32 (CUDA's softmax)."""
    gen = torch.Generator().manual_seed(0)
    value = torch.randn(B, C, H, W, generator=gen).to(low_dtype)
    attn = torch.randn(B, heads, (H + 1) // 2, (W + 1) // 2, 9, 9, generator=gen).softmax(-1)
    return value, attn


def run_op(fn, value, attn, dtype):
    v, a = value.clone().requires_grad_(), attn.clone().requires_grad_()
    with torch.autocast('cpu', dtype=dtype):
        out = fn(v, a, 3, 1, 2)
    out.float().square().sum().backward()
    return out, v.grad, a.grad


@pytest.mark.parametrize('dtype', LOW, ids=str)
@pytest.mark.parametrize('path', ['fused', 'registered_op', 'reference_fallback'])
def test_op_accepts_the_cuda_autocast_dtype_pattern(dtype, path, monkeypatch):
    value, attn = cuda_pattern_inputs(dtype)
    # outside autocast the mix is an error, not a silent cast
    with pytest.raises(TypeError, match='same dtype'):
        outlook_attention(value, attn, 3, 1, 2)
    if path == 'registered_op':
        if not ext_available():
            pytest.fail('mmvit_hybrid._ext is not built')
        fn = torch.ops.mmvit_hybrid.outlook_attention_forward  # the op's autocast kernel casts
    else:
        fn = outlook_attention
        if path == 'reference_fallback':
            monkeypatch.setattr(oa_module, '_EXT_AVAILABLE', False)
            monkeypatch.setattr(oa_module, '_warned', {'missing'})  # the warning is tested elsewhere
    out, grad_v, grad_a = run_op(fn, value, attn, dtype)
    # autocast's rule for matmul-like ops: both inputs in the autocast dtype, output too
    assert out.dtype == dtype
    # gradients come back in each input's own dtype
    assert grad_v.dtype == dtype and grad_a.dtype == torch.float32
    # against float64 on the same values (attn rounded to the autocast dtype, as the op sees it)
    ref = run_op(outlook_attention_reference, value.double(), attn.to(dtype).double(),
                 torch.bfloat16)  # float64 is not autocast
    for name, got, want in zip(('out', 'grad_value', 'grad_attn'), (out, grad_v, grad_a), ref):
        assert torch.isfinite(got).all() and got.abs().sum() > 0, name
        assert rel_err(got, want) < REL_TOL[dtype], f'{name}: {rel_err(got, want):.2e}'


def test_registered_autocast_kernel_for_the_gradient_ops():
    """The gradient ops carry the same autocast rule (double backward under autocast)."""
    if not ext_available():
        pytest.fail('mmvit_hybrid._ext is not built')
    value, attn = cuda_pattern_inputs(torch.bfloat16)
    ops = torch.ops.mmvit_hybrid
    grad = torch.randn(value.shape)  # float32
    with torch.autocast('cpu', dtype=torch.bfloat16):
        gv = ops.outlook_attention_grad_value(grad, attn, 3, 1, 2)
        ga = ops.outlook_attention_grad_attn(grad, value, attn.shape[1], 3, 1, 2)
    assert gv.dtype == ga.dtype == torch.bfloat16
    expected = ops.outlook_attention_grad_value(grad.bfloat16(), attn.bfloat16(), 3, 1, 2)
    torch.testing.assert_close(gv, expected, rtol=0, atol=0)


class ToFloat32(nn.Module):
    """Stands in for the attention dropout: returns float32, as CUDA autocast's softmax does."""

    def forward(self, x):
        return x.float()


@pytest.mark.parametrize('dtype', LOW, ids=str)
def test_outlooker_layer_with_the_cuda_dtype_pattern(dtype, monkeypatch):
    """OutlookAttention under CPU autocast, its attention made float32 as on CUDA: the op gets
    (low-precision value, float32 attn), forward and backward run, and the result is close to
    the float32 layer's."""
    torch.manual_seed(0)
    layer = outlooker_module.OutlookAttention(32, 2).eval()
    x = torch.randn(2, 9, 11, 32)
    expected = layer(x)
    layer.attn_drop = ToFloat32()
    seen = []

    def spy(value, attn, *args):
        seen.append((value.dtype, attn.dtype))
        return outlook_attention(value, attn, *args)

    monkeypatch.setattr(outlooker_module, 'outlook_attention', spy)
    xg = x.clone().requires_grad_()
    with torch.autocast('cpu', dtype=dtype):
        out = layer(xg)
    out.float().sum().backward()
    assert seen == [(dtype, torch.float32)]
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert rel_err(out, expected) < 2e-2
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# ---------------------------------------------------------------------------------------------
# bfloat16 CPU autocast end to end

#: constructor overrides of the tiny_backbones rows: DSNet keeps its default attention dropout, whose
#: CPU path (chunked attention, each chunk checkpointed) must run under autocast as well
ROW_OVERRIDES = {'DSNet': dict(attn_drop_rate=0.1)}


class LowPrecisionSpy:
    """Records the output dtypes of every Linear/Conv2d and of the outlook-attention op."""

    def __init__(self, model, monkeypatch):
        self.dtypes = []
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.register_forward_hook(lambda mod, inp, out: self.dtypes.append(out.dtype))
        self.op_dtypes = []

        def spy(value, attn, *args):
            out = outlook_attention(value, attn, *args)
            self.op_dtypes.append(out.dtype)
            return out

        monkeypatch.setattr(outlooker_module, 'outlook_attention', spy)


def assert_finite_grads(model, name):
    grads = [(n, p.grad) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, g in grads if g is None]
    assert len(missing) < len(grads), f'{name}: no gradients'
    for n, g in grads:
        if g is not None:
            assert torch.isfinite(g).all(), f'{name}: {n} has a non-finite gradient'
    assert sum(g.abs().sum().item() for _, g in grads if g is not None) > 0, name


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                   reason='no CUDA GPU on this machine: CUDA autocast not tested')
# CPU: bfloat16 (CPU autocast); CUDA (tools/gpu_check.sh): float16 and bfloat16, the real --amp
AUTOCAST = [pytest.param('cpu', torch.bfloat16, id='cpu-bf16'),
            pytest.param('cuda', torch.float16, id='cuda-fp16', marks=requires_cuda),
            pytest.param('cuda', torch.bfloat16, id='cuda-bf16', marks=requires_cuda)]


@pytest.mark.parametrize('device,dtype', AUTOCAST)
@pytest.mark.parametrize('name', [row.name for row in TINY_BACKBONES])
def test_backbone_autocast_forward_backward(name, device, dtype, monkeypatch):
    model = tiny_backbone(name).build(**ROW_OVERRIDES.get(name, {})).train().to(device)
    spy = LowPrecisionSpy(model, monkeypatch)
    x = torch.randn(2, 3, 64, 64, device=device)
    with torch.autocast(device, dtype=dtype):
        outs = model(x)
    loss = sum(o.float().square().mean() for o in outs)
    assert torch.isfinite(loss), f'{name}: loss {loss}'
    loss.backward()
    assert dtype in spy.dtypes, f'{name}: no layer ran in {dtype}'
    if name == 'VOLO':
        assert spy.op_dtypes and set(spy.op_dtypes) == {dtype}
    assert_finite_grads(model, name)


def shrink_volo(cfg, family):
    """Tiny VOLO in a config, with the neck/head input widths that match it."""
    row = tiny_backbone('VOLO')
    cfg.model.backbone.arch = dict(row.cfg['arch'])
    cfg.model.backbone.drop_path_rate = 0.
    widths = list(row.channels)
    if family == 'mmdet':
        cfg.model.neck.in_channels = widths
    elif family == 'mmseg':
        cfg.model.decode_head.update(in_channels=widths, channels=32)
        cfg.model.auxiliary_head.update(in_channels=widths[cfg.model.auxiliary_head.in_index],
                                        channels=16)
    else:
        cfg.model.head.in_channels = widths[-1]


# Mask R-CNN reaches mmcv's nms and RoIAlign, which run in float32 islands under autocast
# (mmvit_hybrid/engine/mmcv_autocast.py; test_mmcv_box_ops_run_in_float32_under_autocast).
CONFIG_FAMILIES = {
    'mmdet': 'configs/volo/mask_rcnn_volo_d1_coco.py',
    'mmseg': 'configs/volo/upernet_volo_d1_ade20k.py',
    'mmpretrain': 'configs/volo/volo_d1_in1k.py',
}


def build_with_batch(cfg, family):
    """The config's model (its library's registry) and one small training batch for it."""
    images = lambda n, h, w: [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for _ in range(n)]  # noqa: E731
    if family == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.testing import demo_mm_inputs
        model = MODELS.build(cfg.model)
        packed = demo_mm_inputs(batch_size=1, image_shapes=[(3, 128, 160)], num_items=[2],
                                num_classes=80, with_mask=True)
    elif family == 'mmseg':
        from mmengine.structures import PixelData
        from mmseg.registry import MODELS
        from mmseg.structures import SegDataSample
        cfg.model.data_preprocessor.size = (64, 96)
        model = MODELS.build(cfg.model)
        samples = [SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, 64, 96))))
                   for _ in range(2)]
        packed = dict(inputs=images(2, 64, 96), data_samples=samples)
    else:
        from mmpretrain.registry import MODELS
        from mmpretrain.structures import DataSample
        cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))  # as the Runner does
        model = MODELS.build(cfg.model)
        packed = dict(inputs=images(2, 64, 64),
                      data_samples=[DataSample().set_gt_label(i) for i in range(2)])
    model.init_weights()
    return model.train(), model.data_preprocessor(packed, True)


@pytest.mark.parametrize('family', list(CONFIG_FAMILIES))
def test_config_family_bf16_autocast_loss_and_backward(family, monkeypatch):
    """Mask R-CNN, UperNet and the mmpretrain classifier with (tiny) VOLO under bfloat16
    autocast: finite losses, finite non-zero gradients, the outlook op ran in bfloat16."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmvit_hybrid.utils.config_utils import strip_pretrained
    cfg = Config.fromfile(CONFIG_FAMILIES[family])
    strip_pretrained(cfg.model)
    shrink_volo(cfg, family)
    init_default_scope(family)
    model, data = build_with_batch(cfg, family)
    ops_seen = []

    def spy(value, attn, *args):
        out = outlook_attention(value, attn, *args)
        ops_seen.append(out.dtype)
        return out

    monkeypatch.setattr(outlooker_module, 'outlook_attention', spy)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
        total, _ = model.parse_losses(losses)
    assert torch.isfinite(total), f'{family}: loss {total}'
    total.backward()
    assert ops_seen and set(ops_seen) == {torch.bfloat16}, ops_seen
    assert_finite_grads(model.backbone, family)


def test_mmcv_box_ops_run_in_float32_under_autocast():
    """mmcv 2.1.0's nms and RoIAlign kernels refuse bfloat16 (the unwrapped functions raise
    here); under autocast the package's wrappers run them in float32, as torchvision's autocast
    kernels do: the same indices and features as float32 on the same values, RoIAlign's output
    and gradient in the input's dtype, and nothing changes outside autocast."""
    from mmcv.ops import RoIAlign, nms

    import mmvit_hybrid.engine  # noqa: F401  (enables the wrappers)
    nms_module = importlib.import_module('mmcv.ops.nms')  # the modules, not the functions
    forward = nms_module.NMSop.forward
    roi_align = importlib.import_module('mmcv.ops.roi_align').roi_align
    assert getattr(forward, 'mmvit_fp32_island', False) and roi_align.mmvit_fp32_island
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(64, 2, generator=gen) * 20], 1).bfloat16()
    scores = torch.rand(64, generator=gen).bfloat16()
    feats = torch.randn(2, 8, 16, 16, generator=gen).bfloat16().requires_grad_()
    rois = torch.tensor([[0, 1., 1., 9., 12.], [1, 3.5, 0., 15., 7.25]]).bfloat16()
    layer = RoIAlign(4, spatial_scale=1., sampling_ratio=0)

    # negative control: mmcv's own functions fail on these inputs
    with pytest.raises(RuntimeError, match='BFloat16'):
        forward.__wrapped__(None, boxes, scores, 0.5, 0, 0, -1)
    with pytest.raises(RuntimeError, match='BFloat16'):
        roi_align.__wrapped__(feats, rois, (4, 4), 1., 0, 'avg', True)
    # outside autocast the wrappers do not cast: still mmcv's error
    with pytest.raises(RuntimeError, match='BFloat16'):
        nms(boxes, scores, 0.5)

    with torch.autocast('cpu', dtype=torch.bfloat16):
        dets, keep = nms(boxes, scores, 0.5)
        out = layer(feats, rois)
    _, keep32 = nms(boxes.float(), scores.float(), 0.5)
    assert 0 < len(keep) < len(boxes) and torch.equal(keep, keep32)
    feats32 = feats.detach().float().requires_grad_()
    out32 = layer(feats32, rois.float())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), out32, rtol=1e-2, atol=1e-2)  # bf16 rounding of out
    weight = torch.randn(out.shape, generator=gen)
    (out.float() * weight).sum().backward()
    (out32 * weight).sum().backward()
    assert feats.grad.dtype == torch.bfloat16 and feats.grad.abs().sum() > 0
    torch.testing.assert_close(feats.grad.float(), feats32.grad, rtol=2e-2, atol=2e-2)
