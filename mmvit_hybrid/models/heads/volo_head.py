"""VOLO's classification head with token labeling (VOLO, arXiv 2106.13112; token labeling, Jiang
et al., arXiv 2104.10858), for mmpretrain's ``ImageClassifier`` on a
``VOLO(out_type='cls_and_tokens')`` backbone."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead

from mmvit_hybrid.registry import MODELS
from ..utils.mix_token import reverse_mix_token


@MODELS.register_module()
class VOLOHead(ClsHead):
    """Class-token classifier plus a token-labeling classifier on every patch token.

    Prediction (as the reference at inference): ``fc(cls) + aux_weight * max_n aux_fc(token_n)``.

    Training loss (sail-sg/volo ``loss/cross_entropy.py`` ``TokenLabelCrossEntropy``, which the
    reference's ``--token-label`` recipe uses, ``cls_weight=1``, ``dense_weight=0.5``):
    ``loss(fc(cls), class target) + token_loss_weight * mean over tokens of loss(aux_fc(token_n),
    dense target_n)``, both with the head's ``loss`` (``LabelSmoothLoss`` in the configs, so both
    targets are smoothed, as ``create_token_label_target`` does before the reference's loss). The
    class target is ``gt_score`` if given, else ``gt_label``. The dense target of a sample is, in
    this order:

    * ``gt_token_label``: token-label maps, (num_classes, h, w) scores or (h, w) class indices,
      resized bilinearly to the token grid if it differs;
    * ``gt_token_score`` (num_classes, ): the same target on every token, written by
      :class:`~mmvit_hybrid.models.utils.MixTokenDataPreprocessor` (the image target before
      MixToken);
    * else the class target on every token (the reference without token maps: dense targets from
      the image label, ``create_token_label_target``).

    With MixToken (metainfo ``mix_token_box``), the token logits inside the box are swapped with
    those of the mirrored sample ``B-1-i`` before the dense loss (the reference's "reverse mix
    token"), so each token is scored against the label of the image its pixels came from.

    Args:
        num_classes (int): Classes.
        in_channels (int): Channels C of the class and patch tokens.
        aux_weight (float): Weight of the max token logits in the prediction; 0 drops the token
            classifier and its loss (a plain class-token classifier, the reference's
            ``return_dense=False``). Defaults to 0.5.
        token_loss_weight (float): Weight of the dense loss (the reference's ``--dense-weight``).
            Must be > 0 when ``aux_weight`` > 0. Defaults to 0.5.
        loss (dict): Loss of the class and of every token; must take soft (B, num_classes)
            targets. Defaults to cross-entropy.
        topk (int | Sequence[int]): Top-k accuracies when ``cal_acc``. Defaults to (1, ).
        cal_acc (bool): Report training accuracy (hard labels only). Defaults to False.
        init_cfg (dict, optional): Defaults to truncated normal (std 0.02) linears, zero biases.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 aux_weight: float = 0.5,
                 token_loss_weight: float = 0.5,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Sequence[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)):
        super().__init__(loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'VOLOHead: num_classes must be a positive int, got {num_classes!r}')
        if aux_weight < 0 or token_loss_weight < 0:
            raise ValueError(f'VOLOHead: aux_weight and token_loss_weight must be >= 0, got {aux_weight}, '
                             f'{token_loss_weight}')
        if aux_weight > 0 and token_loss_weight == 0:
            raise ValueError('VOLOHead: token_loss_weight=0 would leave the token classifier untrained while '
                             'aux_weight > 0 adds it to the prediction; set aux_weight=0 for a class-token-only head')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.aux_weight = aux_weight
        self.token_loss_weight = token_loss_weight
        self.fc = nn.Linear(in_channels, num_classes)
        self.aux_fc = nn.Linear(in_channels, num_classes) if aux_weight > 0 else None

    def pre_logits(self, feats: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Check and unpack the backbone output: ((B, C) class token, (B, C, h, w) patch tokens)."""
        if not (isinstance(feats, (tuple, list)) and len(feats) == 2 and feats[0].dim() == 2
                and feats[1].dim() == 4):
            shapes = [tuple(f.shape) for f in feats] if isinstance(feats, (tuple, list)) else type(feats).__name__
            raise ValueError(f"VOLOHead takes VOLO(out_type='cls_and_tokens')'s (class token (B, C), patch "
                             f'tokens (B, C, h, w)), got {shapes}; set the backbone out_type and no neck')
        cls_token, tokens = feats
        if cls_token.shape[1] != self.in_channels or tokens.shape[1] != self.in_channels:
            raise ValueError(f'VOLOHead: in_channels={self.in_channels} but the tokens have {cls_token.shape[1]} '
                             'channels; set head.in_channels to the backbone width')
        return cls_token, tokens

    def _logits(self, feats) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Class logits (B, K) and token logits (B, N, K) (None without the token classifier)."""
        cls_token, tokens = self.pre_logits(feats)
        cls_logits = self.fc(cls_token)
        if self.aux_fc is None:
            return cls_logits, None
        return cls_logits, self.aux_fc(tokens.flatten(2).transpose(1, 2))  # (B, C, h, w) -> (B, hw, C) -> (B, hw, K)

    def _predict_logits(self, cls_logits, token_logits):
        if token_logits is None:
            return cls_logits
        return cls_logits + self.aux_weight * token_logits.max(dim=1)[0]

    def forward(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Prediction logits (B, num_classes)."""
        return self._predict_logits(*self._logits(feats))

    def _token_targets(self, data_samples, grid: Tuple[int, int]) -> torch.Tensor:
        """(B, h*w, K) dense targets; see the class docstring for their source."""
        has = ['gt_token_label' in s for s in data_samples]
        if not any(has):
            return self._image_targets(data_samples)[:, None].expand(-1, grid[0] * grid[1], -1)
        if not all(has):
            raise ValueError('VOLOHead: some data samples have gt_token_label and some do not; token labels '
                             'must be given for the whole batch or not at all')
        targets = []
        for sample in data_samples:
            label = sample.gt_token_label
            if label.dim() == 2:  # (h, w) class indices -> (K, h, w) one-hot
                label = F.one_hot(label.long(), self.num_classes).permute(2, 0, 1)
            if label.dim() != 3 or label.shape[0] != self.num_classes:
                raise ValueError(f'VOLOHead: gt_token_label must be ({self.num_classes}, h, w) scores or (h, w) '
                                 f'class indices, got shape {tuple(sample.gt_token_label.shape)}')
            targets.append(label.float())
        targets = torch.stack(targets)  # (B, K, h, w)
        if tuple(targets.shape[-2:]) != tuple(grid):
            targets = F.interpolate(targets, size=tuple(grid), mode='bilinear', align_corners=False)
        return targets.flatten(2).transpose(1, 2)  # (B, K, h, w) -> (B, h*w, K)

    def _image_targets(self, data_samples) -> torch.Tensor:
        """(B, K) image-level dense targets: gt_token_score, else gt_score, else one-hot gt_label."""
        for key in ('gt_token_score', 'gt_score'):
            if key in data_samples[0]:
                return torch.stack([s.get(key) for s in data_samples]).float()
        labels = torch.cat([s.gt_label for s in data_samples])
        if labels.numel() != len(data_samples):
            raise ValueError('VOLOHead: the dense targets from gt_label need one label per sample; give gt_score '
                             'for multi-label targets')
        return F.one_hot(labels.long(), self.num_classes).float()

    @staticmethod
    def _mix_token_box(data_samples, grid: Tuple[int, int]) -> Optional[Tuple[int, int, int, int]]:
        """MixToken's (y1, y2, x1, x2) box from the metainfo (the same for the whole batch), or None."""
        boxes = {tuple(s.metainfo['mix_token_box']) if 'mix_token_box' in s.metainfo else None for s in data_samples}
        if len(boxes) != 1:
            raise ValueError(f'VOLOHead: the data samples carry different MixToken boxes {boxes}; MixToken mixes '
                             'a whole batch with one box')
        box = boxes.pop()
        if box is None:
            return None
        mix_grid = tuple(data_samples[0].metainfo.get('mix_token_grid', grid))
        if mix_grid != tuple(grid):
            raise ValueError(f'VOLOHead: MixToken mixed a {mix_grid} token grid but the backbone returned {tuple(grid)} '
                             'tokens; set MixToken.token_stride to the backbone\'s token stride (16 for VOLO)')
        if 'gt_token_score' not in data_samples[0] and 'gt_token_label' not in data_samples[0]:
            raise ValueError('VOLOHead: MixToken box without gt_token_score: the class target is mixed and cannot '
                             'serve as dense target; use MixTokenDataPreprocessor, which writes both')
        return box

    def loss(self, feats: Tuple[torch.Tensor, ...], data_samples: List, **kwargs) -> dict:
        """Losses of a batch (``loss``: class, ``loss_token``: dense); see the class docstring."""
        cls_logits, token_logits = self._logits(feats)
        losses = self._get_loss(cls_logits, data_samples, **kwargs)
        grid = tuple(feats[1].shape[-2:])
        box = self._mix_token_box(data_samples, grid)
        if token_logits is None:
            if box is not None or 'gt_token_label' in data_samples[0]:
                raise ValueError('VOLOHead: the data samples carry token labels or a MixToken box but aux_weight=0 '
                                 'built no token classifier; set aux_weight > 0 (0.5 in VOLO)')
            return losses
        B, N, K = token_logits.shape
        if box is not None:
            token_logits = reverse_mix_token(token_logits.reshape(B, *grid, K), box)  # (B, h*w, K) -> (B, h, w, K)
        targets = self._token_targets(data_samples, grid).to(token_logits.device)
        dense = self.loss_module(token_logits.reshape(B * N, K), targets.reshape(B * N, K), avg_factor=B * N,
                                 **kwargs)  # (B, h, w, K) or (B, N, K) -> (B*N, K)
        losses['loss_token'] = self.token_loss_weight * dense
        return losses
