"""Layer ids for layer-wise / stage-wise learning-rate decay, shared by the backbones' ``get_layer_depth``.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` (and this package's
``LayerDecayOptimWrapperConstructor``, built on it) asks ``backbone.get_layer_depth(param_name,
prefix)`` for ``(layer_id, num_layers)`` and gives the parameter ``lr * layer_decay_rate ** (num_layers
- layer_id - 1)``: id 0 (the stem) decays most, id ``num_layers - 1`` (what follows the backbone:
neck, heads) keeps the full lr.
"""
from typing import Optional, Sequence, Tuple

DECAY_TYPES = ('layer_wise', 'stage_wise')


def check_decay_type(decay_type: str) -> bool:
    """Return whether ``decay_type`` is ``'layer_wise'``; raise ValueError unless it is one of
    :data:`DECAY_TYPES` (mmseg's and mmdet's ``decay_type`` values)."""
    if decay_type not in DECAY_TYPES:
        raise ValueError(f'decay_type must be one of {DECAY_TYPES}, got {decay_type!r}')
    return decay_type == 'layer_wise'


def strip_prefix(param_name: str, prefix: str) -> Optional[str]:
    """``param_name`` without ``prefix``, or None for a parameter outside the backbone."""
    return param_name[len(prefix):] if param_name.startswith(prefix) else None


def stage_layer_depth(name: Optional[str], depths: Sequence[int], decay_type: str = 'layer_wise') -> Tuple[int, int]:
    """``(layer_id, num_layers)`` for a backbone of ``stages.{i}.downsample`` / ``stages.{i}.blocks.{j}``
    / ``stages.{i}.norm`` (DS-Net, DMFormer), after timm's ConvNeXt ``group_matcher`` (the same layout):

    * ``'layer_wise'`` (timm ``coarse=False``): 0 for ``stages.0.downsample`` (the stem / patch
      embedding); one id per block in network order (``1 + sum(depths[:i]) + j``); a later stage's
      downsampling conv shares the id of the stage's first block (timm: ``stages.i.downsample``
      and ``stages.i.blocks.0`` match the same ordinal), a stage's output norm the id of its last
      block (timm's ``norm_pre``: ``MATCH_PREV_GROUP``). ``num_layers = sum(depths) + 2``.
    * ``'stage_wise'`` (timm ``coarse=True``): 0 for the stem, ``i + 1`` for all of stage ``i``.
      ``num_layers = len(depths) + 2``.

    Anything else (``name`` None: outside the backbone) gets ``num_layers - 1``: the full lr.

    Args:
        name (str, optional): Parameter name relative to the backbone; None if outside it.
        depths (Sequence[int]): Blocks per stage.
        decay_type (str): ``'layer_wise'`` or ``'stage_wise'``. Defaults to ``'layer_wise'``.
    """
    layer_wise = check_decay_type(decay_type)
    num_layers = (sum(depths) if layer_wise else len(depths)) + 2
    parts = name.split('.') if name else []
    if len(parts) < 3 or parts[0] != 'stages':
        return num_layers - 1, num_layers
    stage, module = int(parts[1]), parts[2]
    if stage == 0 and module == 'downsample':
        return 0, num_layers
    if not layer_wise:
        return stage + 1, num_layers
    first = 1 + sum(depths[:stage])
    if module == 'blocks':
        return first + int(parts[3]), num_layers
    return (first if module == 'downsample' else first + depths[stage] - 1), num_layers
