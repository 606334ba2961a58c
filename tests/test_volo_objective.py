"""VOLO's training objective: VOLOHead's losses against a transcription of the reference
(sail-sg/volo ``loss/cross_entropy.py`` ``TokenLabelCrossEntropy``, TokenLabeling ``mixup_target``
as ``create_token_label_target``, the MixToken branches of ``models/volo.py``; Copyright 2021 Sea
Limited, Apache-2.0), MixToken's box (sampling, pixels, reversal on the token logits) and the
wiring through the data preprocessor and the in1k configs."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

from mmvit_hybrid.models import VOLO, VOLOHead
from mmvit_hybrid.models.utils import MixToken, MixTokenDataPreprocessor, reverse_mix_token
from tiny_backbones import tiny_backbone

ROOT = Path(__file__).resolve().parents[1]
K = 5  # classes


# ---- the reference, transcribed (only np.int -> int and the argument order of the box changed) ----
def ref_rand_bbox(size, lam, scale=1):
    """sail-sg/volo models/volo.py rand_bbox; size is the (B, H, W, C) stem output."""
    W = size[1] // scale
    H = size[2] // scale
    cut_rat = np.sqrt(1. - lam)
    cut_w = int(W * cut_rat)
    cut_h = int(H * cut_rat)
    cx = np.random.randint(W)
    cy = np.random.randint(H)
    bbx1 = np.clip(cx - cut_w // 2, 0, W)
    bby1 = np.clip(cy - cut_h // 2, 0, H)
    bbx2 = np.clip(cx + cut_w // 2, 0, W)
    bby2 = np.clip(cy + cut_h // 2, 0, H)
    return bbx1, bby1, bbx2, bby2


def ref_target(labels, num_classes, smoothing):
    """TokenLabeling tlt/data/mixup.py mixup_target with lam=1 (main.py's create_token_label_target)."""
    off_value = smoothing / num_classes
    on_value = 1. - smoothing + off_value
    return torch.full((labels.numel(), num_classes), off_value).scatter_(1, labels.long().view(-1, 1), on_value)


def ref_reverse(x_aux, patch_h, patch_w, bb):
    """The reverse-MixToken branch of sail-sg/volo VOLO.forward."""
    bbx1, bby1, bbx2, bby2 = bb
    x_aux = x_aux.reshape(x_aux.shape[0], patch_h, patch_w, x_aux.shape[-1])
    temp_x = x_aux.clone()
    temp_x[:, bbx1:bbx2, bby1:bby2, :] = x_aux.flip(0)[:, bbx1:bbx2, bby1:bby2, :]
    return temp_x.reshape(x_aux.shape[0], patch_h * patch_w, x_aux.shape[-1])


def ref_token_label_ce(output, aux_output, bb, target, dense_weight=0.5, cls_weight=1.0):
    """sail-sg/volo TokenLabelCrossEntropy.forward, 2-D target branch (no token-label maps)."""
    def soft_ce(x, t):
        return torch.sum(-t * F.log_softmax(x, dim=-1), dim=-1).mean()
    bbx1, bby1, bbx2, bby2 = bb
    B, N, C = aux_output.shape
    target_cls = target
    target_aux = target.repeat(1, N).reshape(B * N, C)
    lam = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / N)
    if lam < 1:
        target_cls = lam * target_cls + (1 - lam) * target_cls.flip(0)
    aux_output = aux_output.reshape(-1, C)
    return cls_weight * soft_ce(output, target_cls) + dense_weight * soft_ce(aux_output, target_aux)


# ---- helpers ----
def samples_with_labels(labels, token_labels=None):
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(int(label)) for label in labels]
    for sample, label in zip(samples, token_labels if token_labels is not None else []):
        sample.set_field(label, 'gt_token_label', dtype=torch.Tensor)
    return samples


def smooth_head(**kwargs):
    head = VOLOHead(K, 8, loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'), **kwargs)
    head.init_weights()
    return head


def head_logits(head, feats):
    cls_token, tokens = feats
    cls_logits = cls_token @ head.fc.weight.T + head.fc.bias
    token_logits = tokens.flatten(2).transpose(1, 2) @ head.aux_fc.weight.T + head.aux_fc.bias  # (B, h*w, K)
    return cls_logits, token_logits


def random_images(num, h, w, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen) for _ in range(num)]


def preprocess(samples, h, w, box=None, **kwargs):
    """MixTokenDataPreprocessor on random uint8 images; a given box is forced through MixToken.sample_box."""
    pre = MixTokenDataPreprocessor(num_classes=K, mix_token=dict(type='MixToken'), **kwargs)
    if box is not None:
        pre.mix_token.sample_box = lambda grid, lam: box
    return pre, pre(dict(inputs=random_images(len(samples), h, w), data_samples=samples), training=True)


# ---- the loss against the reference ----
@pytest.mark.parametrize('box', [(1, 3, 0, 2), (0, 0, 0, 0), (0, 3, 0, 4)], ids=['box', 'empty', 'full'])
def test_loss_matches_reference_token_label_ce(box):
    """Label smoothing 0.1 (the configs'), MixToken box given: cls CE with the lam-mixed smoothed
    target + 0.5 x per-token CE with the sample's own smoothed target after reversing the box."""
    torch.manual_seed(0)
    head = smooth_head()
    labels = torch.tensor([0, 3, 1, 4])
    _, data = preprocess(samples_with_labels(labels), 48, 64, box=box)  # 3x4 token grid
    samples = data['data_samples']
    assert samples[0].metainfo['mix_token_box'] == box and samples[0].metainfo['mix_token_grid'] == (3, 4)
    feats = (torch.randn(4, 8), torch.randn(4, 8, 3, 4))
    losses = head.loss(feats, samples)

    cls_logits, token_logits = head_logits(head, feats)
    y1, y2, x1, x2 = box
    bb = (y1, x1, y2, x2)  # the reference's (bbx1, bby1, bbx2, bby2): rows, then columns
    expected = ref_token_label_ce(cls_logits, ref_reverse(token_logits, 3, 4, bb), bb, ref_target(labels, K, 0.1))
    torch.testing.assert_close(losses['loss'] + losses['loss_token'], expected)
    # the two parts separately, by hand
    t = ref_target(labels, K, 0.1)
    lam = 1 - (y2 - y1) * (x2 - x1) / 12
    cls_ce = -((lam * t + (1 - lam) * t.flip(0)) * cls_logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(losses['loss'], cls_ce)


def test_loss_without_mix_token_and_with_mixup():
    """No MixToken: cls + 0.5 x dense with the image label on every token; with Mixup first (the
    reference's mixup_fn before the model) both targets are the Mixup target, MixToken on top."""
    torch.manual_seed(0)
    head = smooth_head()
    labels = torch.tensor([2, 0, 4])
    feats = (torch.randn(3, 8), torch.randn(3, 8, 2, 3))
    cls_logits, token_logits = head_logits(head, feats)
    losses = head.loss(feats, samples_with_labels(labels))  # plain labels, no preprocessor
    expected = ref_token_label_ce(cls_logits, token_logits, (0, 0, 0, 0), ref_target(labels, K, 0.1))
    torch.testing.assert_close(losses['loss'] + losses['loss_token'], expected)

    np.random.seed(3)
    torch.manual_seed(3)
    _, data = preprocess(samples_with_labels(labels), 32, 48, box=(0, 1, 1, 3),
                         batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8)]))
    samples = data['data_samples']
    mixup = torch.stack([s.gt_token_score for s in samples])  # Mixup's target, before MixToken
    assert not torch.equal(mixup, F.one_hot(labels, K).float())  # Mixup did mix
    losses = head.loss(feats, samples)
    bb = (0, 1, 1, 3)
    expected = ref_token_label_ce(cls_logits, ref_reverse(token_logits, 2, 3, bb), bb, mixup * 0.9 + 0.1 / K)
    torch.testing.assert_close(losses['loss'] + losses['loss_token'], expected)


def test_token_label_maps_and_prediction():
    """Token-label maps (soft at another grid, or hard) are the dense targets; prediction unchanged."""
    head = VOLOHead(K, 8)
    head.init_weights()
    feats = (torch.randn(2, 8), torch.randn(2, 8, 3, 4))
    cls_logits, token_logits = head_logits(head, feats)
    prediction = cls_logits + 0.5 * token_logits.max(1)[0]
    torch.testing.assert_close(head(feats), prediction)
    assert [int(p.pred_label) for p in head.predict(feats)] == prediction.argmax(1).tolist()

    labels = torch.tensor([0, 1])
    scores = torch.rand(2, K, 6, 8).softmax(1)
    losses = head.loss(feats, samples_with_labels(labels, list(scores)))
    targets = F.interpolate(scores, size=(3, 4), mode='bilinear', align_corners=False).flatten(2).transpose(1, 2)
    torch.testing.assert_close(losses['loss'], F.cross_entropy(cls_logits, labels))
    torch.testing.assert_close(losses['loss_token'], 0.5 * -(targets * token_logits.log_softmax(-1)).sum(-1).mean())
    hard = torch.randint(0, K, (2, 3, 4))
    losses = head.loss(feats, samples_with_labels(labels, list(hard)))
    torch.testing.assert_close(losses['loss_token'], 0.5 * F.cross_entropy(token_logits.reshape(-1, K), hard.reshape(-1)))
    plain = VOLOHead(K, 8, aux_weight=0.)  # the plain class-token classifier: class loss only
    assert plain.aux_fc is None
    torch.testing.assert_close(plain(feats), feats[0] @ plain.fc.weight.T + plain.fc.bias)
    assert set(plain.loss(feats, samples_with_labels(labels))) == {'loss'}


# ---- MixToken's box ----
@pytest.mark.parametrize('seed', range(4))
def test_box_sampling_matches_reference(seed):
    mix = MixToken()
    for lam, grid in ((0.3, (14, 14)), (0.8, (24, 24)), (0.05, (5, 7))):
        np.random.seed(seed)
        bbx1, bby1, bbx2, bby2 = ref_rand_bbox((2, grid[0] * 2, grid[1] * 2, 8), lam, scale=2)
        np.random.seed(seed)
        assert mix.sample_box(grid, lam) == (bbx1, bbx2, bby1, bby2)


def test_mix_token_pixels_and_scores():
    mix = MixToken(token_stride=4)
    x = torch.randn(3, 2, 12, 20)  # 3x5 token grid
    scores = F.one_hot(torch.tensor([0, 1, 2]), 3).float()
    mixed, mixed_scores = mix.mix(x.clone(), scores, box=(1, 3, 2, 4))
    inside = torch.zeros(12, 20, dtype=torch.bool)
    inside[4:12, 8:16] = True
    for i in range(3):
        torch.testing.assert_close(mixed[i][:, inside], x[2 - i][:, inside])
        torch.testing.assert_close(mixed[i][:, ~inside], x[i][:, ~inside])
    lam = 1 - 4 / 15
    torch.testing.assert_close(mixed_scores, lam * scores + (1 - lam) * scores.flip(0))
    assert mix.last_grid == (3, 5) and mix.last_box == (1, 3, 2, 4)


def test_box_reversal_restores_token_local_outputs():
    """With a token-local model (each token sees only its own 16x16 pixels), the reversed token
    logits after MixToken equal those of the un-mixed images, so the dense loss is the un-mixed one."""
    torch.manual_seed(0)
    head = smooth_head()
    proj = nn.Conv2d(3, 8, 16, stride=16)  # token-local "backbone": (B, 3, H, W) -> (B, 8, H/16, W/16)
    labels = torch.tensor([1, 2, 3, 0, 4])
    pre, data = preprocess(samples_with_labels(labels), 64, 80, box=(1, 3, 1, 4))
    clean = pre(dict(inputs=random_images(5, 64, 80), data_samples=samples_with_labels(labels)),
                training=False)['inputs']
    assert not torch.equal(data['inputs'], clean)
    with torch.no_grad():
        tokens_mixed, tokens_clean = proj(data['inputs']), proj(clean)
        cls_token = torch.randn(5, 8)
        _, logits_mixed = head_logits(head, (cls_token, tokens_mixed))
        _, logits_clean = head_logits(head, (cls_token, tokens_clean))
        assert not torch.allclose(logits_mixed, logits_clean)
        reversed_ = reverse_mix_token(logits_mixed.reshape(5, 4, 5, K), (1, 3, 1, 4)).reshape(5, 20, K)
        torch.testing.assert_close(reversed_, logits_clean)
        loss_mixed = head.loss((cls_token, tokens_mixed), data['data_samples'])['loss_token']
        loss_clean = head.loss((cls_token, tokens_clean), samples_with_labels(labels))['loss_token']
    torch.testing.assert_close(loss_mixed, loss_clean)


def test_classifier_trains_with_mix_token_end_to_end():
    """ImageClassifier + tiny VOLO + MixTokenDataPreprocessor: the sampled box reaches the head,
    the losses are finite and every parameter gets a gradient."""
    from mmpretrain.models import ImageClassifier
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    np.random.seed(1)
    tiny = tiny_backbone('VOLO')
    model = ImageClassifier(
        backbone=dict(type='VOLO', arch=tiny.cfg['arch'], img_size=64, out_type='cls_and_tokens'),
        head=dict(type='VOLOHead', num_classes=K, in_channels=tiny.channels[-1],
                  loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
        data_preprocessor=dict(type='MixTokenDataPreprocessor', num_classes=K, mean=[128.] * 3, std=[64.] * 3,
                               mix_token=dict(type='MixToken')))
    model.init_weights()
    model.train()
    seen = []
    original = VOLOHead.__dict__['_mix_token_box']  # the staticmethod object, restored as it was
    VOLOHead._mix_token_box = staticmethod(lambda s, g: seen.append(original.__func__(s, g)) or seen[-1])
    try:
        images = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(4)]
        data = model.data_preprocessor(dict(inputs=images, data_samples=[DataSample().set_gt_label(i) for i in range(4)]),
                                       True)
        losses = model(**data, mode='loss')
    finally:
        VOLOHead._mix_token_box = original
    assert seen == [model.data_preprocessor.mix_token.last_box]
    total, _ = model.parse_losses(losses)
    assert set(losses) == {'loss', 'loss_token'} and torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    assert isinstance(model.backbone, VOLO)


def test_in1k_configs_use_mix_token():
    for name in ('volo_d1_in1k.py', 'volo_d3_in1k.py', 'volo_d1_384_in1k.py', 'volo_d5_512_in1k.py'):
        cfg = Config.fromfile(ROOT / 'configs/volo' / name)
        assert cfg.data_preprocessor.type == 'MixTokenDataPreprocessor', name
        assert cfg.data_preprocessor.mix_token == dict(type='MixToken', alpha=1.0, token_stride=16), name
        assert cfg.data_preprocessor.num_classes == 1000 and cfg.data_preprocessor.to_rgb, name
        assert cfg.model.head.token_loss_weight == 0.5 and cfg.model.head.aux_weight == 0.5, name
        assert cfg.model.head.loss.label_smooth_val == 0.1, name


# ---- errors ----
def test_errors():
    head = VOLOHead(K, 8)
    feats = (torch.randn(2, 8), torch.randn(2, 8, 3, 4))
    with pytest.raises(ValueError, match="out_type='cls_and_tokens'"):
        head((torch.randn(2, 8, 3, 4), ))
    with pytest.raises(ValueError, match='in_channels=8'):
        head((torch.randn(2, 6), torch.randn(2, 6, 3, 4)))
    samples = samples_with_labels([0, 1], [torch.rand(K, 3, 4)])
    with pytest.raises(ValueError, match='whole batch'):
        head.loss(feats, samples)
    with pytest.raises(ValueError, match=r'\(5, h, w\) scores'):
        head.loss(feats, samples_with_labels([0, 1], [torch.rand(4, 3, 4)] * 2))
    with pytest.raises(ValueError, match='aux_weight > 0'):
        VOLOHead(K, 8, aux_weight=0.).loss(feats, samples_with_labels([0, 1], [torch.rand(K, 3, 4)] * 2))
    with pytest.raises(ValueError, match='token_loss_weight=0'):
        VOLOHead(K, 8, token_loss_weight=0.)
    # a MixToken box on another grid than the backbone's tokens
    _, data = preprocess(samples_with_labels([0, 1]), 32, 32, box=(0, 1, 0, 1))  # 2x2 grid
    with pytest.raises(ValueError, match='token_stride'):
        head.loss(feats, data['data_samples'])
    # MixToken in mmpretrain's plain batch_augments would lose the box
    from mmpretrain.models.utils import ClsDataPreprocessor
    plain = ClsDataPreprocessor(num_classes=K, batch_augments=dict(augments=[dict(type='MixToken')]))
    with pytest.raises(RuntimeError, match='MixTokenDataPreprocessor'):
        plain(dict(inputs=[torch.zeros(3, 32, 32, dtype=torch.uint8)] * 2, data_samples=samples_with_labels([0, 1])),
              True)
    with pytest.raises(ValueError, match='alpha'):
        MixToken(alpha=0)
    with pytest.raises(ValueError, match='smaller than one'):
        MixToken().mix(torch.zeros(2, 3, 8, 8), torch.zeros(2, K))


@pytest.mark.parametrize('cls', [MixToken, MixTokenDataPreprocessor])
def test_init_arguments_documented(cls):
    import inspect
    import re
    doc = inspect.getdoc(cls)
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ('self', 'kwargs')]
    assert not [p for p in params if not re.search(rf'^\s+{p} \(', doc, re.M)]
