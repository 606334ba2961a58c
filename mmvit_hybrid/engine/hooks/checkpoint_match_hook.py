"""Refuse a ``load_from``/``--resume`` checkpoint that belongs to another architecture."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from mmvit_hybrid.models.backbones.base_backbone import third_party_format


def _strip(key: str) -> str:
    return key[len('module.'):] if key.startswith('module.') else key


@HOOKS.register_module()
class CheckpointMatchHook(Hook):
    """Raise ``ValueError`` before a checkpoint that does not fit the model is loaded.

    mmengine loads ``load_from`` and ``--resume`` checkpoints with ``strict=False``: a checkpoint
    of another architecture only logs a list of missing keys and training starts from (almost)
    random weights; on resume the optimizer state then fails with an unrelated error. This hook
    runs before the weights are loaded (``after_load_checkpoint`` is called first) and stops when
    fewer than ``min_match`` of the model's tensors are in the checkpoint with the same shape. The
    message says what the checkpoint looks like and names the converter in
    ``tools/model_converters/`` when one applies. Head-only differences (another ``num_classes``
    when fine-tuning) stay allowed. Skipped under ``FlexibleRunner`` (sharded state dicts).

    Args:
        min_match (float): fraction of the model's tensors that must match. Defaults to 0.5.
    """

    priority = 'VERY_HIGH'

    def __init__(self, min_match: float = 0.5):
        if not 0 <= min_match <= 1:
            raise ValueError(f'CheckpointMatchHook: min_match must be in [0, 1], got {min_match!r}')
        self.min_match = min_match

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Compare the checkpoint's tensors with the model's."""
        if type(runner).__name__ == 'FlexibleRunner':  # sharded (FSDP/DeepSpeed) state dicts
            return
        state = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
        if not isinstance(state, dict):
            raise ValueError(f'The checkpoint has no state dict (top-level keys: '
                             f'{sorted(checkpoint)[:10]})')
        state = {_strip(k): v for k, v in state.items()}
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        own = model.state_dict()
        matched = [k for k, v in own.items()
                   if k in state and hasattr(state[k], 'shape') and state[k].shape == v.shape]
        if len(matched) >= self.min_match * len(own):
            return
        backbone = getattr(model, 'backbone', None)
        arch = f'{type(model).__name__} with a {type(backbone).__name__} backbone' if \
            backbone is not None else type(model).__name__
        what = third_party_format(list(state))
        if what is not None:
            hint = f'It looks like {what[0]}: convert it first with {what[1]}.'
        elif backbone is not None and not any(k.startswith('backbone.') for k in state):
            hint = ('It has no "backbone." keys: if it holds backbone weights only, load it with '
                    'model.backbone.init_cfg=dict(type="Pretrained", checkpoint=PATH) instead of '
                    'load_from (converters for third-party weights are in '
                    'tools/model_converters/).')
        else:
            hint = ('It was saved from another model or arch: check the config (e.g. '
                    'model.backbone.arch) or pick the matching checkpoint; converters for '
                    'third-party weights are in tools/model_converters/.')
        example = sorted(set(state) - set(own))[:3]
        raise ValueError(
            f'The checkpoint does not fit this model ({arch}): only {len(matched)} of its '
            f'{len(own)} tensors are in the checkpoint with the same shape (checkpoint keys such '
            f'as {example}). {hint}')
