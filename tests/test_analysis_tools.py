"""FLOP counting (mmvit_hybrid.utils.complexity) against analytic formulas computed here for small
layers, and tools/analysis_tools/get_flops.py against them and published numbers.

Convention: FLOPs = 2 x multiply-adds of matmuls / convs / attention; element-wise work (bias,
softmax, norms) is not counted."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mmvit_hybrid.models.layers import OutlookAttention, RelPosAttention
from mmvit_hybrid.models.layers.mhsa_block import GlobalSelfAttention
from mmvit_hybrid.ops import ext_available, outlook_attention, outlook_attention_reference
from mmvit_hybrid.utils import count_flops, count_params, cpu_allocator_peak_mib

ROOT = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


get_flops = _load('get_flops', 'tools/analysis_tools/get_flops.py')


pytestmark = pytest.mark.usefixtures('one_thread')


def flops_of(fn, *args, backward=False):
    with FlopCounterMode(display=False) as counter:
        out = fn(*args)
        if backward:
            out.sum().backward()
    return counter.get_total_flops()


# ------------------------------------------------------------------ outlook attention


def explicit_outlook_attention(value, attn, K, p, s):
    """Outlook attention written here with one einsum (torch's FlopCounter counts it with its own
    bmm formula): every window's K^2 x K^2 weights times its K^2 unfolded values, folded back."""
    B, C, H, W = value.shape
    heads, Ho, Wo = attn.shape[1:4]
    # (B, C * K^2, Ho * Wo) -> (B, heads, d, K^2, Ho, Wo) -> (B, heads, Ho, Wo, K^2, d)
    windows = F.unfold(value, K, padding=p, stride=s).view(B, heads, C // heads, K * K, Ho, Wo)
    windows = windows.permute(0, 1, 4, 5, 3, 2)
    out = torch.einsum('bnhwij,bnhwjd->bnhwid', attn, windows)
    # (B, heads, Ho, Wo, K^2, d) -> (B, heads, d, K^2, Ho, Wo) -> (B, C * K^2, Ho * Wo), summed back
    out = out.permute(0, 1, 5, 4, 2, 3).reshape(B, C * K * K, Ho * Wo)
    return F.fold(out, (H, W), K, padding=p, stride=s)


@pytest.mark.parametrize('B, C, heads, H, W, K, p, s', [(2, 12, 3, 8, 8, 3, 1, 2), (1, 8, 2, 7, 9, 3, 1, 2),
                                                       (1, 6, 1, 6, 6, 3, 1, 1)])
def test_outlook_attention_fused_and_reference_count_the_same(B, C, heads, H, W, K, p, s):
    """The fused op's registered formula against torch's own count of an explicit einsum
    formulation (checked to compute the same values), forward and forward + backward."""
    assert ext_available(), 'the compiled extension must be built for this test'
    Ho, Wo = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    value = torch.randn(B, C, H, W, requires_grad=True)
    attn = torch.randn(B, heads, Ho, Wo, K * K, K * K, requires_grad=True)
    with torch.no_grad():
        torch.testing.assert_close(outlook_attention(value, attn, K, p, s),
                                   explicit_outlook_attention(value, attn, K, p, s), rtol=1e-5, atol=1e-5)
    forward = flops_of(explicit_outlook_attention, value, attn, K, p, s)
    both = flops_of(explicit_outlook_attention, value, attn, K, p, s, backward=True)
    assert forward > 0 and both > forward
    for fn in (outlook_attention, outlook_attention_reference):
        assert flops_of(fn, value, attn, K, p, s) == forward, fn.__name__
        assert flops_of(fn, value, attn, K, p, s, backward=True) == both, fn.__name__


def test_outlook_attention_layer_count():
    B, H, W, C, heads, K, s = 2, 10, 6, 16, 2, 3, 2
    layer = OutlookAttention(C, heads, kernel_size=K, stride=s).eval()
    Ho, Wo = math.ceil(H / s), math.ceil(W / s)
    analytic = (2 * B * H * W * C * C  # v
                + 2 * B * Ho * Wo * C * heads * K**4  # attn logits from the pooled tokens
                + 2 * B * C * Ho * Wo * K**4  # fold(attn @ unfold(v))
                + 2 * B * H * W * C * C)  # proj
    with torch.no_grad():
        assert flops_of(layer, torch.randn(B, H, W, C)) == analytic


# ------------------------------------------------------------------ global attention (SDPA)


def test_sdpa_counted_on_cpu_like_the_explicit_math():
    B, heads, N, M, d = 2, 3, 20, 12, 8
    q, k, v = torch.randn(B, heads, N, d), torch.randn(B, heads, M, d), torch.randn(B, heads, M, d)
    analytic = 2 * B * heads * N * M * d * 2  # q @ k^T and attn @ v
    assert flops_of(F.scaled_dot_product_attention, q, k, v) == analytic
    assert flops_of(lambda q, k, v: (q @ k.transpose(-1, -2)).softmax(-1) @ v, q, k, v) == analytic
    mask = torch.randn(N, M)
    assert flops_of(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), q, k, v) == analytic


def test_global_self_attention_count():
    B, H, W, C, heads = 2, 5, 7, 24, 4
    N = H * W
    layer = GlobalSelfAttention(C, heads).eval()
    analytic = 2 * B * N * C * 3 * C + 2 * 2 * B * N * N * C + 2 * B * N * C * C  # qkv, attention, proj
    with torch.no_grad():
        assert flops_of(layer, torch.randn(B, H, W, C)) == analytic


# ------------------------------------------------------------------ relative-position attention


@pytest.mark.parametrize('impl', ['matmul', 'sdpa', 'auto'])
def test_rel_pos_attention_count(impl):
    B, C, heads, H, W = 2, 32, 4, 6, 5
    N, d = H * W, C // heads
    layer = RelPosAttention(C, num_heads=heads, feat_size=(H, W), attn_impl=impl).eval()
    qkv = 2 * B * N * C * 3 * C
    # q . rel_h over the H key rows, q . rel_w over the W key columns
    rel_logits = 2 * B * heads * N * H * d + 2 * B * heads * N * W * d
    if impl == 'sdpa':  # q = [q, logits_h, logits_w], k = [k, onehot rows, onehot cols], padded to a multiple of 8
        width = -(-(d + H + W) // 8) * 8
        attention = 2 * B * heads * N * N * width * 2
    else:
        attention = 2 * B * heads * N * N * d * 2  # content logits q . k and attn @ v
    with torch.no_grad():
        assert flops_of(layer, torch.randn(B, C, H, W)) == qkv + rel_logits + attention


def test_count_flops_backward_and_breakdown():
    layer = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    x = torch.randn(3, 8)
    total, per_module = count_flops(layer, inputs=x, by_module=True)
    assert total == 2 * 3 * (8 * 16 + 16 * 4)
    assert per_module['Sequential.0'] == 2 * 3 * 8 * 16 and per_module['Sequential.1'] == 2 * 3 * 16 * 4
    # backward of a linear: grad input (not for the first layer's input) and grad weight
    assert count_flops(layer, inputs=x, backward=True) == total + 2 * 3 * 16 * 4 + total
    assert layer.training  # mode restored
    with pytest.raises(ValueError, match='input_shape'):
        count_flops(layer)
    assert count_params(layer) == 8 * 16 + 16 + 16 * 4 + 4


# ------------------------------------------------------------------ the tool


def test_get_flops_volo_d1_matches_published():
    """VOLO-D1 at 224: the paper's 26.6M params and 6.8G FLOPs (multiply-adds)."""
    result = get_flops.get_flops(str(ROOT / 'configs/volo/volo_d1_in1k.py'), [224])
    assert abs(result['params'] / 26.6e6 - 1) < 0.005, result['params']
    assert abs(result['macs'] / 6.8e9 - 1) < 0.03, result['macs']
    assert result['flops'] == 2 * result['macs']
    # the outlook attention (fused op, counted by the registered formula) is in the total: stage 0 of
    # D1 runs 4 outlookers on a 28x28 map, C=192, 14x14 windows, K=3
    outlook = 4 * 2 * 192 * 14 * 14 * 3**4
    stage0 = result['per_module']['ImageClassifier.backbone.stages.0']
    per_block = 2 * 28 * 28 * 192 * 192 * 2 + 2 * 14 * 14 * 192 * 6 * 81 + 2 * 28 * 28 * 192 * 576 * 2
    assert stage0 == outlook + 4 * per_block


def test_get_flops_backbone_only_and_whole_detector():
    cfg = str(ROOT / 'configs/dsnet/mask_rcnn_dsnet_t_coco.py')
    backbone = get_flops.get_flops(cfg, [128, 160], backbone_only=True)
    whole = get_flops.main([cfg, '--shape', '128', '160'])
    assert backbone['input_shape'] == whole['input_shape'] == [1, 3, 128, 160]
    assert backbone['params'] == whole['backbone_params'] < whole['params']
    assert whole['macs'] > backbone['macs'] > 0
    model, _ = get_flops.build_model(get_flops.load_config(cfg))
    x = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(0))
    assert count_flops(model.backbone, inputs=x) == backbone['flops']


def test_get_flops_segmentor_scales_with_input():
    cfg = str(ROOT / 'configs/dmformer/upernet_dmformer_s_ade20k.py')
    small = get_flops.get_flops(cfg, [64])
    large = get_flops.get_flops(cfg, [64, 128])
    # a convolutional network: cost proportional to the pixels (UperNet's pooled PPM branches aside)
    assert 1.9 < large['macs'] / small['macs'] <= 2.0


def test_get_flops_bad_arguments():
    with pytest.raises(FileNotFoundError, match='does not exist'):
        get_flops.get_flops('configs/no_such_config.py')
    with pytest.raises(ValueError, match='--shape'):
        get_flops.parse_shape([1, 2, 3])
    with pytest.raises(ValueError, match='--shape'):
        get_flops.parse_shape([0])
    with pytest.raises(ValueError, match='batch'):
        get_flops.get_flops(str(ROOT / 'configs/volo/volo_d1_in1k.py'), [64], batch=0)


# ------------------------------------------------------------------ side-by-side comparison script


def test_allocator_peak_counts_live_bytes():
    """Held 4 MiB, then 4 + 8 MiB at once, then 8 MiB: the peak is 12 MiB, whatever glibc keeps."""

    def step():
        a = torch.empty(2**20)  # 4 MiB of float32
        b = torch.empty(2**21)  # 8 MiB
        del a
        c = torch.empty(2**20)  # 4 MiB, after a was freed
        return b, c

    assert cpu_allocator_peak_mib(step) == pytest.approx(12.0, abs=0.01)
    assert cpu_allocator_peak_mib(lambda: torch.zeros(2**18).sum()) == pytest.approx(1.0, abs=0.01)


def test_compare_reference_bot_attention_row():
    """The script's BoT-attention case: timm's layer and ours agree, both are timed and measured."""
    compare = _load('compare_reference', 'benchmarks/compare_reference.py')
    rows = compare.main(['--cases', 'bot_attn', '--sizes', '64', '--batch', '2', '--iters', '2', '--warmup', '1',
                         '--threads', '1', '--memory', '--mode', 'fwdbwd'])
    (row, ) = rows
    assert (row['case'], row['size'], row['batch']) == ('bot_attn', 64, 2)
    assert row['diff'] < 1e-5
    assert row['ref_ms'] > 0 and row['ours_ms'] > 0 and row['ratio'] == pytest.approx(row['ref_ms'] / row['ours_ms'])
    # both hold at least the (2, 4, 16, 16) attention probabilities during the step
    assert min(row['ref_mib'], row['ours_mib']) >= 2 * 4 * 16 * 16 * 4 / 2**20


# ------------------------------------------------------------------ tools/analysis_tools/benchmark.py


def test_benchmark_tool_reports_time_throughput_and_memory():
    bench = _load('benchmark', 'tools/analysis_tools/benchmark.py')
    cfg = str(ROOT / 'configs/botnet/botnet50_in1k.py')
    fwd = bench.benchmark(cfg, shape=(64, 96), batch=2, backbone_only=True, warmup=1, iters=3)
    assert fwd['input_shape'] == [2, 3, 64, 96] and len(fwd['times_ms']) == 3
    assert fwd['median_ms'] == pytest.approx(sorted(fwd['times_ms'])[1])
    assert fwd['images_per_s'] == pytest.approx(2 / (fwd['median_ms'] / 1e3))
    # a forward holds at least the 2x64x32x48 stem output (float32)
    assert fwd['peak_mib'] >= 2 * 64 * 32 * 48 * 4 / 2**20
    train = bench.benchmark(cfg, shape=(64, 96), batch=2, backbone_only=True, mode='fwdbwd', warmup=0, iters=1)
    assert train['peak_mib'] > fwd['peak_mib']  # activations kept for the backward
    bf16 = bench.main([cfg, '--shape', '64', '--backbone-only', '--amp', 'bf16', '--iters', '1', '--warmup', '0'])
    assert bf16['amp'] == 'bf16' and bf16['median_ms'] > 0
    with pytest.raises(ValueError, match='mode must be'):
        bench.benchmark(cfg, mode='train')
    with pytest.raises(ValueError, match='iters >= 1'):
        bench.benchmark(cfg, iters=0)
