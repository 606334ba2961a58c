"""mmpretrain's ``ClsDataPreprocessor`` followed by MixToken, handing MixToken's box to the head."""
from typing import Optional, Union

import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.structures import DataSample

from mmvit_hybrid.registry import BATCH_AUGMENTS, MODELS
from .mix_token import MixToken


@MODELS.register_module()
class MixTokenDataPreprocessor(ClsDataPreprocessor):
    """``ClsDataPreprocessor`` (normalisation, optional Mixup/CutMix ``batch_augments``), then
    MixToken on every training batch, in the reference's order (sail-sg/volo ``main.py`` applies the
    Mixup function to the batch, then the model applies MixToken).

    In training, each data sample then carries:

    * ``gt_score``: the class target after MixToken, ``lam * t + (1 - lam) * t.flip(0)``, where
      ``t`` is the target before it (``gt_score`` from Mixup/CutMix, else one-hot ``gt_label``);
      right for any classification head;
    * ``gt_token_score``: ``t``, the target of every token (the reference's dense target built from
      the image label);
    * metainfo ``mix_token_box`` (y1, y2, x1, x2) and ``mix_token_grid`` (h, w) in token cells, for
      :class:`~mmvit_hybrid.models.heads.VOLOHead` to reverse the mix on its token logits.

    Label smoothing stays in the head's loss (``LabelSmoothLoss``), which applies it to both targets
    as the reference's ``create_token_label_target`` does (smoothing is linear, so smoothing before
    or after mixing gives the same target).

    Args:
        mix_token (dict | MixToken, optional): The MixToken augmentation (built from
            ``BATCH_AUGMENTS``); it turns ``to_onehot`` on, as ``batch_augments`` does. None makes
            this a plain ``ClsDataPreprocessor``. Defaults to None.
        **kwargs: ``ClsDataPreprocessor`` arguments (mean, std, to_rgb, num_classes,
            batch_augments, ...).
    """

    def __init__(self, mix_token: Optional[Union[dict, MixToken]] = None, **kwargs):
        if isinstance(mix_token, dict):
            mix_token = BATCH_AUGMENTS.build(mix_token)
        if mix_token is not None and not isinstance(mix_token, MixToken):
            raise TypeError(f'MixTokenDataPreprocessor: mix_token must be a MixToken or its config, got '
                            f'{type(mix_token).__name__}')
        if mix_token is not None:
            kwargs['to_onehot'] = True  # MixToken mixes (B, num_classes) targets, as ClsDataPreprocessor's batch_augments
            mix_token.box_consumer = type(self).__name__
        super().__init__(**kwargs)
        self.mix_token = mix_token

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess as ``ClsDataPreprocessor``, then (training only) MixToken; see the class docstring."""
        data = super().forward(data, training)
        if not training or self.mix_token is None:
            return data
        samples = data.get('data_samples')
        if not samples or not isinstance(samples[0], DataSample) or 'gt_score' not in samples[0]:
            raise ValueError('MixTokenDataPreprocessor: MixToken needs single-task DataSample targets '
                             '(gt_label or gt_score) in training')
        targets = torch.stack([s.gt_score for s in samples]).float()  # (B, num_classes), one-hot or Mixup's
        inputs, mixed = self.mix_token(data['inputs'], targets)
        meta = dict(mix_token_box=self.mix_token.last_box, mix_token_grid=self.mix_token.last_grid)
        for sample, target, score in zip(samples, targets, mixed):
            sample.set_field(target, 'gt_token_score', dtype=torch.Tensor)
            sample.set_gt_score(score)
            sample.set_metainfo(meta)
        data['inputs'] = inputs
        return data
