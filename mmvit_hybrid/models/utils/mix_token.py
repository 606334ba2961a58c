"""MixToken (token labeling, Jiang et al., arXiv 2104.10858; used by VOLO, arXiv 2106.13112) as an
mmpretrain batch augmentation.

Written after sail-sg/volo ``models/volo.py`` (``rand_bbox`` and the MixToken branches of
``VOLO.forward``; Copyright 2021 Sea Limited, Apache-2.0). The box sampling is mmpretrain's
``CutMix.rand_bbox``, which is the same draw as the reference's ``rand_bbox``.
"""
from typing import Optional, Tuple

import numpy as np
import torch
from mmpretrain.models.utils import CutMix

from mmvit_hybrid.registry import BATCH_AUGMENTS

Box = Tuple[int, int, int, int]


@BATCH_AUGMENTS.register_module()
class MixToken(CutMix):
    """CutMix on whole token cells with the batch's mirror image (sample ``B-1-i`` into sample
    ``i``), as the reference's MixToken.

    As in sail-sg/volo, per batch: ``lam ~ Beta(alpha, alpha)``; a box of ``int(h * sqrt(1 - lam))``
    x ``int(w * sqrt(1 - lam))`` token cells (each side rounded down to even) centred on a uniform
    random cell and clipped to the ``h x w`` token grid (mmpretrain's ``CutMix.rand_bbox`` on the
    token grid); the class target becomes ``lam' * t + (1 - lam') * t.flip(0)`` with
    ``lam' = 1 - box area / (h * w)`` (``CutMix``'s lambda correction, the reference's
    ``TokenLabelCrossEntropy``). The reference mixes the stem's stride-8 features in ``2 x 2``
    groups (one stride-16 token each); here the image's ``token_stride x token_stride`` pixel cells
    are mixed instead, so only the stem's receptive field at the box edges sees both images.

    The token classifier must undo the mix on its logits (the reference's "reverse MixToken"): use
    :class:`~mmvit_hybrid.models.utils.MixTokenDataPreprocessor` (``mix_token=dict(type='MixToken')``),
    which writes the box into the data samples for :class:`~mmvit_hybrid.models.heads.VOLOHead`.
    Calling the augmentation from mmpretrain's plain ``batch_augments`` raises, because the box would
    be lost and the token loss silently wrong.

    Args:
        alpha (float): Beta distribution parameter. Defaults to 1.0 (the reference's ``beta``).
        token_stride (int): Pixels per token cell: 16 for VOLO (stride-8 stem, 2x2 pooling).
            Defaults to 16.
    """

    def __init__(self, alpha: float = 1.0, token_stride: int = 16):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ValueError(f'MixToken: alpha must be a positive number, got {alpha!r}')
        if isinstance(token_stride, bool) or not isinstance(token_stride, int) or token_stride < 1:
            raise ValueError(f'MixToken: token_stride must be a positive int, got {token_stride!r}')
        super().__init__(alpha=float(alpha), cutmix_minmax=None, correct_lam=True)
        self.token_stride = token_stride
        self.box_consumer: Optional[str] = None  # set by the data preprocessor that hands the box on
        self.last_box: Optional[Box] = None
        self.last_grid: Optional[Tuple[int, int]] = None

    def sample_box(self, grid: Tuple[int, int], lam: float) -> Box:
        """The reference's ``rand_bbox`` on an (h, w) token grid (``CutMix.rand_bbox``):
        (y1, y2, x1, x2), half-open."""
        y1, y2, x1, x2 = self.rand_bbox(grid, lam)
        return int(y1), int(y2), int(x1), int(x2)

    def grid(self, batch_inputs: torch.Tensor) -> Tuple[int, int]:
        """Token grid (H // token_stride, W // token_stride) of (B, C, H, W) inputs."""
        if batch_inputs.dim() != 4:
            raise ValueError(f'MixToken takes (B, C, H, W) inputs, got shape {tuple(batch_inputs.shape)}')
        h, w = batch_inputs.shape[-2] // self.token_stride, batch_inputs.shape[-1] // self.token_stride
        if h < 1 or w < 1:
            raise ValueError(f'MixToken: inputs of {tuple(batch_inputs.shape[-2:])} are smaller than one '
                             f'{self.token_stride}x{self.token_stride} token cell')
        return h, w

    def mix(self, batch_inputs: torch.Tensor, batch_scores: torch.Tensor,
            box: Optional[Box] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mix in place; the box is kept in ``last_box``, the grid in ``last_grid``.

        Args:
            batch_inputs (Tensor): (B, C, H, W) images.
            batch_scores (Tensor): (B, num_classes) class targets (one-hot or already mixed).
            box (tuple, optional): (y1, y2, x1, x2) in token cells; sampled when None.

        Returns:
            tuple: mixed inputs and mixed class targets (B, num_classes).
        """
        grid = self.grid(batch_inputs)
        if batch_scores.dim() != 2 or batch_scores.shape[0] != batch_inputs.shape[0]:
            raise ValueError(f'MixToken: batch_scores must be (B, num_classes) with B={batch_inputs.shape[0]}, '
                             f'got {tuple(batch_scores.shape)}')
        if box is None:
            box = self.sample_box(grid, float(np.random.beta(self.alpha, self.alpha)))
        y1, y2, x1, x2 = box
        s = self.token_stride
        region = batch_inputs[:, :, y1 * s:y2 * s, x1 * s:x2 * s]
        batch_inputs[:, :, y1 * s:y2 * s, x1 * s:x2 * s] = region.flip(0)  # flip copies, then pasted
        lam = 1. - (y2 - y1) * (x2 - x1) / (grid[0] * grid[1])
        batch_scores = batch_scores.float()
        self.last_box, self.last_grid = box, grid
        return batch_inputs, lam * batch_scores + (1. - lam) * batch_scores.flip(0)

    def __call__(self, batch_inputs: torch.Tensor, batch_score: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The batch-augmentation interface (``CutMix``'s): mixed inputs and targets. Refused unless
        a data preprocessor set ``box_consumer`` (it reads ``last_box`` afterwards)."""
        if self.box_consumer is None:
            raise RuntimeError(
                "MixToken: nothing hands the box on to the head, so the token logits could not be "
                "reversed; give it as data_preprocessor=dict(type='MixTokenDataPreprocessor', "
                "mix_token=dict(type='MixToken')) instead of in batch_augments")
        return super().__call__(batch_inputs, batch_score)


def reverse_mix_token(token_maps: torch.Tensor, box: Box) -> torch.Tensor:
    """Undo MixToken on per-token outputs (the reference's "reverse mix token"): inside the box,
    sample ``i`` takes sample ``B-1-i``'s outputs, which were computed from sample ``i``'s pixels.

    Args:
        token_maps (Tensor): (B, h, w, ...) per-token outputs, e.g. token logits.
        box (tuple): (y1, y2, x1, x2) in token cells.

    Returns:
        Tensor: A new tensor of the same shape (differentiable).
    """
    y1, y2, x1, x2 = box
    out = token_maps.clone()
    out[:, y1:y2, x1:x2] = token_maps[:, y1:y2, x1:x2].flip(0)
    return out
