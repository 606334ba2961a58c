"""VOLO's classification head with token labeling (VOLO, arXiv 2106.13112; token labeling, Jiang
et al., arXiv 2104.10858), for mmpretrain's ``ImageClassifier`` on a
``VOLO(out_type='cls_and_tokens')`` backbone."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead

from mmvit_hybrid.registry import MODELS


@MODELS.register_module()
class VOLOHead(ClsHead):
    """Class-token classifier plus a token-labeling classifier on every patch token.

    Prediction (as the reference at inference): ``fc(cls) + aux_weight * max_n aux_fc(token_n)``.

    Training:

    * with token labels (every data sample has ``gt_token_label``: (num_classes, h, w) scores or
      (h, w) class indices, resized bilinearly to the token grid if it differs): ``loss`` on the
      class logits against ``gt_label``/``gt_score``, plus ``token_loss_weight`` x the soft-target
      cross-entropy of every token's ``aux_fc`` logits (the reference's ``TokenLabelCrossEntropy``,
      dense weight 0.5; the per-token targets are used as given and should sum to 1);
    * without token labels: ``loss`` on the prediction logits above, so the token classifier
      learns through the max and training optimises what inference returns (the reference, without
      token labels, trains and predicts with the class logits only: ``aux_weight=0``).

    Args:
        num_classes (int): Classes.
        in_channels (int): Channels C of the class and patch tokens.
        aux_weight (float): Weight of the max token logits in the prediction; 0 drops the token
            classifier. Defaults to 0.5.
        token_loss_weight (float): Weight of the token-labeling loss. Defaults to 0.5.
        loss (dict): Classification loss. Defaults to cross-entropy.
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

    def _token_targets(self, data_samples, grid: Tuple[int, int]) -> Optional[torch.Tensor]:
        """(B, h*w, K) per-token target distributions, or None if no sample has token labels."""
        has = ['gt_token_label' in s for s in data_samples]
        if not any(has):
            return None
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

    def loss(self, feats: Tuple[torch.Tensor, ...], data_samples: List, **kwargs) -> dict:
        """Losses of a batch; see the class docstring for the two cases."""
        cls_logits, token_logits = self._logits(feats)
        token_targets = self._token_targets(data_samples, feats[1].shape[-2:])
        if token_targets is None:
            return self._get_loss(self._predict_logits(cls_logits, token_logits), data_samples, **kwargs)
        if token_logits is None:
            raise ValueError('VOLOHead: the data samples carry gt_token_label but aux_weight=0 built no token '
                             'classifier; set aux_weight > 0 (0.5 in VOLO) or drop the token labels')
        losses = self._get_loss(cls_logits, data_samples, **kwargs)
        token_loss = -(token_targets * F.log_softmax(token_logits, dim=-1)).sum(-1).mean()
        losses['loss_token'] = self.token_loss_weight * token_loss
        return losses
