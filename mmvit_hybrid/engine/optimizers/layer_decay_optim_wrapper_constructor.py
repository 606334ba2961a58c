"""Layer-wise / stage-wise learning-rate decay for any model whose backbone has ``get_layer_depth``.

mmpretrain 1.2.0's ``LearningRateDecayOptimWrapperConstructor`` does the work (one param group
per parameter, ``lr = base_lr * layer_decay_rate ** (num_layers - layer_id - 1)`` with
``(layer_id, num_layers) = get_layer_depth(param_name)``, weight decay from ``custom_keys`` /
``*_decay_mult``). It asks the *model* for ``get_layer_depth``, which mmpretrain's classifiers have
and mmdet's detectors and mmseg's segmentors do not; mmseg's own ``LearningRateDecayOptimizerConstructor``
knows only BEiT/ConvNeXt/MAE names and raises ``NotImplementedError`` for other backbones.
:class:`LayerDecayOptimWrapperConstructor` asks ``model.backbone.get_layer_depth(name,
'backbone.')`` instead (every parameter outside the backbone: the full lr), and adds mmseg's
``decay_type`` switch. It is registered in MMEngine's root registry, so a config of mmdet, mmseg
or mmpretrain (any ``default_scope``) builds it by name::

    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.9, decay_type='layer_wise',
                           norm_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)}))
"""
import inspect
from functools import partial
from typing import Callable, List, Optional

from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
from torch import nn

from mmvit_hybrid.models.backbones.layer_depth import DECAY_TYPES

# keys of mmseg's/mmdet's LearningRateDecayOptimizerConstructor that mean something else here
FOREIGN_KEYS = {'decay_rate': "use 'layer_decay_rate' (mmpretrain's name)",
                'num_layers': "the backbone's get_layer_depth gives the number of layers"}


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-decay constructor for detectors and segmentors too (see the module docstring).

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config (``type``, ``optimizer``, ...).
        paramwise_cfg (dict): ``layer_decay_rate`` (float in (0, 1], required): the lr factor per
            layer id below the top; ``decay_type`` (str): ``'layer_wise'`` (default, one id per
            block) or ``'stage_wise'`` (one id per stage), as mmseg's; ``custom_keys`` (weight
            decay only: ``decay_mult``), ``bias_decay_mult``, ``norm_decay_mult``,
            ``flat_decay_mult``: as mmpretrain's constructor.

    Raises:
        ValueError: a missing or out-of-range ``layer_decay_rate``, an unknown ``decay_type``,
            mmseg's ``decay_rate``/``num_layers``, or an ``lr_mult`` in ``custom_keys`` (the
            base constructor would ignore it silently).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        name = type(self).__name__
        for key, why in FOREIGN_KEYS.items():
            if key in paramwise_cfg:
                raise ValueError(f'{name}: paramwise_cfg.{key} is not used: {why}')
        rate = paramwise_cfg.get('layer_decay_rate')
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f'{name}: paramwise_cfg.layer_decay_rate must be a number in (0, 1] (e.g. 0.9), '
                             f'got {rate!r}')
        self.decay_type = paramwise_cfg.pop('decay_type', 'layer_wise')
        if self.decay_type not in DECAY_TYPES:
            raise ValueError(f'{name}: paramwise_cfg.decay_type must be one of {DECAY_TYPES}, got {self.decay_type!r}')
        with_lr_mult = [k for k, v in paramwise_cfg.get('custom_keys', {}).items() if 'lr_mult' in v]
        if with_lr_mult:
            raise ValueError(f'{name}: custom_keys {with_lr_mult} set lr_mult; with layer decay the lr comes from the '
                             'layer id alone (custom_keys set weight decay: decay_mult)')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def layer_depth_fn(self, model: nn.Module) -> Callable[[str], tuple]:
        """``param_name -> (layer_id, num_layers)`` for ``model``: its backbone's
        ``get_layer_depth`` with the ``'backbone.'`` prefix, or the model's own (a bare backbone).

        Raises:
            NotImplementedError: neither ``model.backbone`` nor ``model`` has ``get_layer_depth``.
            ValueError: ``'stage_wise'`` for a backbone whose ``get_layer_depth`` has no ``decay_type``.
        """
        backbone = getattr(model, 'backbone', None)
        if isinstance(backbone, nn.Module) and hasattr(backbone, 'get_layer_depth'):
            fn = partial(backbone.get_layer_depth, prefix='backbone.')
        elif hasattr(model, 'get_layer_depth'):
            backbone, fn = model, model.get_layer_depth
        else:
            raise NotImplementedError(
                f'{type(self).__name__}: neither {type(model).__name__} nor its backbone '
                f'({type(backbone).__name__}) has get_layer_depth (VOLO, DSNet, DMFormer and mmpretrain\'s ViT, '
                'Swin, ConvNeXt... have it)')
        if self.decay_type == 'layer_wise':
            return fn  # mmpretrain's backbones take no decay_type; layer-wise is what they give
        if 'decay_type' not in inspect.signature(fn).parameters:
            raise ValueError(f"{type(self).__name__}: decay_type='stage_wise' needs a get_layer_depth with a "
                             f'decay_type argument; that of {type(backbone).__name__} has none')
        return partial(fn, decay_type=self.decay_type)

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """mmpretrain's ``add_params``, with the layer ids of :meth:`layer_depth_fn` (resolved once,
        at the top module).

        Args:
            params (list[dict]): The param groups, extended in place.
            module (nn.Module): The module whose parameters are added.
            prefix (str): The module's name prefix. Defaults to ''.
            get_layer_depth (callable, optional): Resolved by :meth:`layer_depth_fn` when None.
        """
        if get_layer_depth is None:
            get_layer_depth = self.layer_depth_fn(module)
        super().add_params(params, module, prefix=prefix, get_layer_depth=get_layer_depth, **kwargs)
