"""Behaviour every backbone of this package shares: arch tables, ``out_indices``, freezing,
``norm_eval``, the input check, strict pretrained loading and the per-model facts that tools read
(converter, ONNX exporter, minimum export size). Not registered; subclasses are."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from torch.nn.modules.batchnorm import _BatchNorm


class HybridBackbone(BaseModule):
    """Base class of the backbones in this package.

    Subclasses set ``arch_zoo`` (name -> dict of per-stage settings) and ``arch_keys`` (the keys a
    custom arch dict must have), build their layers, then call :meth:`_freeze_stages`. They
    implement :meth:`frozen_modules` and call :meth:`check_input` first in ``forward``. The tools
    read each model's facts from its class: ``converter_hint``, ``third_party_format``,
    ``onnx_exporter``, :meth:`min_export_size`, :meth:`weights_source` and
    :meth:`explain_load_error`. A new backbone also adds a row to ``tests/tiny_backbones.py``.

    Args:
        arch (str | dict): A name in ``arch_zoo`` or a dict with all of ``arch_keys``; its
            per-stage entries are positive ints.
        in_channels (int): Input image channels.
        out_indices (Sequence[int] | int): Stages whose outputs are returned; negatives count
            from the end.
        frozen_stages (int): -1 freezes nothing, 0 the stem, k >= 1 the stem and stages 1..k.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
        drop_path_rate (float): Stochastic depth rate of the deepest block, in [0, 1).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=..., prefix=...)`` loads
            weights strictly (missing or unexpected keys raise); other inits as in mmengine.
    """
    arch_zoo: Dict[str, dict] = {}
    arch_keys: Sequence[str] = ()
    num_stages: int = 4
    #: smallest input H and W; None: any size
    min_input_size: Optional[int] = None
    #: how to get weights that load here, named when a checkpoint does not match
    converter_hint: str = ("this package's own classifier checkpoint with "
                           'python tools/model_converters/extract_backbone.py SRC DST (the backbone-only file)')
    #: (what a third-party checkpoint of this model looks like, the command that converts it), or
    #: None; :meth:`is_third_party_checkpoint` recognises its keys
    third_party_format: Optional[Tuple[str, str]] = None
    #: (``torch.onnx`` exporter, why) for ``tools/deployment/pytorch2onnx.py --exporter auto``
    onnx_exporter: Tuple[str, str] = ('dynamo', 'convs, interpolations and SDPA trace symbolically; the '
                                                'dynamo graph matched PyTorch at every size tried')

    def __init__(self, arch: Union[str, dict], in_channels: int, out_indices, frozen_stages: int,
                 norm_eval: bool, drop_path_rate: float = 0., init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        self.arch_settings = self.parse_arch(arch)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'{name}: in_channels must be a positive int, got {in_channels!r}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'{name}: drop_path_rate must be in [0, 1), got {drop_path_rate}')
        self.in_channels = in_channels
        self.out_indices = self.parse_out_indices(out_indices)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'{name}: frozen_stages must be an int in '
                             f'[-1, {self.num_stages}] (-1 freezes nothing), got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """Resolve ``arch`` to a settings dict, with errors that list the choices."""
        name = cls.__name__
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise KeyError(f'{name}: unknown arch {arch!r}; choose one of '
                               f'{sorted(cls.arch_zoo)} or pass a dict with keys {list(cls.arch_keys)}')
            return dict(cls.arch_zoo[key])
        if isinstance(arch, dict):
            missing = set(cls.arch_keys) - set(arch)
            unknown = set(arch) - set(cls.arch_keys)
            if missing or unknown:
                raise KeyError(f'{name}: a custom arch dict needs exactly the keys {list(cls.arch_keys)}; '
                               f'missing {sorted(missing)}, unknown {sorted(unknown)}')
            per_stage = {k: tuple(v) for k, v in arch.items() if isinstance(v, (list, tuple))}
            if {len(v) for v in per_stage.values()} != {cls.num_stages} or not all(
                    isinstance(n, int) and n > 0 for v in per_stage.values() for n in v):
                raise ValueError(f'{name}: per-stage arch entries need {cls.num_stages} values each, all positive ints, '
                                 f'got {per_stage}')
            return dict(arch)
        raise TypeError(f'{name}: arch must be a str or dict, got {type(arch).__name__}')

    def parse_out_indices(self, out_indices) -> List[int]:
        """Normalise ``out_indices`` to a sorted list of non-negative stage indices."""
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, Sequence) or not out_indices:
            raise TypeError(f'{type(self).__name__}: out_indices must be an int or a non-empty '
                            f'sequence of ints, got {out_indices!r}')
        resolved = []
        for index in out_indices:
            if not isinstance(index, int) or not -self.num_stages <= index < self.num_stages:
                raise ValueError(f'{type(self).__name__}: out_indices entry {index!r} is out of range for '
                                 f'{self.num_stages} stages (valid: 0..{self.num_stages - 1} or negatives)')
            resolved.append(index % self.num_stages)
        if len(set(resolved)) != len(resolved):
            raise ValueError(f'{type(self).__name__}: duplicate out_indices {list(out_indices)}')
        return sorted(resolved)

    def check_input(self, x: torch.Tensor):
        """Raise ``ValueError`` unless ``x`` is (B, in_channels, H, W) with H, W >= min_input_size."""
        name = type(self).__name__
        if x.dim() != 4:
            raise ValueError(f'{name} expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{name} was built for {self.in_channels}-channel inputs, got {x.shape[1]} channels; '
                             'set in_channels or convert the image')
        size = self.min_input_size
        if size is not None and min(x.shape[-2:]) < size:
            raise ValueError(f'{name} needs inputs of at least {size}x{size}, got {tuple(x.shape[-2:])}; '
                             'pad or resize the image')

    def min_export_size(self, dynamic: bool) -> int:
        """Smallest H and W an ONNX export of this backbone is valid for.

        Args:
            dynamic (bool): Whether the export keeps H and W dynamic.
        """
        return self.min_input_size or 1

    @classmethod
    def weights_source(cls, filename: str, folder: str) -> Optional[Tuple[str, str]]:
        """``(arch, command)`` if ``filename`` is the name of this model's converted ImageNet
        weights that the configs load (the arch they hold, the command that writes them into
        ``folder``), else None.

        Args:
            filename (str): The checkpoint's file name.
            folder (str): The folder the command writes to.
        """
        return None

    @classmethod
    def is_third_party_checkpoint(cls, keys: Sequence[str]) -> bool:
        """Whether state-dict ``keys`` have the layout of :attr:`third_party_format`."""
        return False

    def explain_load_error(self, missing: List[str], mismatched: List[str]) -> str:
        """Advice appended to a checkpoint mismatch error ('' for none).

        Args:
            missing (list[str]): Keys of this model the checkpoint lacks.
            mismatched (list[str]): Keys whose tensors have other shapes in the checkpoint.
        """
        return ''

    def frozen_modules(self) -> List[nn.Module]:
        """Modules frozen by ``frozen_stages`` (the stem for 0, plus stages 1..k for k)."""
        raise NotImplementedError

    def _freeze_stages(self):
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Set train mode, keeping frozen stages and (with ``norm_eval``) BatchNorms in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self):
        """Default init for ``init_cfg=None``; strict loading for ``Pretrained``."""
        if self.init_cfg is None:
            self.default_init_weights()
        elif isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(self.init_cfg)
        else:
            super().init_weights()

    def default_init_weights(self):
        """The reference implementation's initialisation; subclasses override."""

    #: prefixes of parameters a checkpoint may lack (they keep their init; logged)
    init_only_prefixes: tuple = ()

    def read_pretrained(self, cfg: dict) -> dict:
        """The state dict of ``cfg['checkpoint']``: the keys under ``cfg['prefix']`` (prefix removed)
        if given, a DDP ``module.`` prefix removed."""
        unknown = set(cfg) - {'type', 'checkpoint', 'prefix', 'map_location'}
        if unknown:
            raise ValueError(f'{type(self).__name__}: unknown Pretrained init_cfg keys {sorted(unknown)}')
        checkpoint = CheckpointLoader.load_checkpoint(
            cfg['checkpoint'], map_location=cfg.get('map_location', 'cpu'))
        state_dict = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
        prefix = cfg.get('prefix')
        if prefix:
            prefix = prefix if prefix.endswith('.') else prefix + '.'
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
            if not state_dict:
                raise ValueError(f'{type(self).__name__}: no key of {cfg["checkpoint"]} starts with '
                                 f'prefix {prefix!r}; fix the prefix (e.g. "backbone.") or drop it')
        return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}

    def adapt_pretrained(self, state_dict: dict) -> dict:
        """Fit a checkpoint's state dict to this model before the strict load (identity here)."""
        return state_dict

    def load_pretrained(self, cfg: dict):
        """Load ``cfg['checkpoint']`` (keys under ``cfg['prefix']`` if given) and fail loudly on a
        key mismatch (apart from :attr:`init_only_prefixes`), naming the keys and the usual fixes."""
        state_dict = self.adapt_pretrained(self.read_pretrained(cfg))
        try:
            result = self.load_state_dict(state_dict, strict=False)
        except RuntimeError as err:  # shape mismatches
            own = self.state_dict()
            mismatched = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
            raise ValueError(f'{type(self).__name__}: checkpoint {cfg["checkpoint"]} has tensors of other '
                             f'shapes than this model; check `arch`. {err}'
                             + self.explain_load_error([], mismatched)) from err
        fresh = [k for k in result.missing_keys if self.init_only_prefixes and k.startswith(self.init_only_prefixes)]
        missing = [k for k in result.missing_keys if k not in fresh]
        if missing or result.unexpected_keys:
            raise ValueError(
                f'{type(self).__name__}: checkpoint {cfg["checkpoint"]} does not match this model: '
                f'{len(missing)} missing keys (e.g. {missing[:3]}), '
                f'{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:3]}). '
                'Check `arch`, set `prefix` (e.g. "backbone." for a detector or classifier checkpoint), '
                f'or convert third-party weights: {self.converter_hint}.' + self.explain_load_error(missing, []))
        if fresh:
            MMLogger.get_current_instance().info(
                f'{type(self).__name__}: {len(fresh)} tensors not in the checkpoint keep their init '
                f'({", ".join(self.init_only_prefixes)})')
        MMLogger.get_current_instance().info(
            f'{type(self).__name__}: loaded {len(state_dict)} tensors from {cfg["checkpoint"]}')


def third_party_format(keys: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(description, converter command) of the first backbone whose third-party checkpoint layout
    ``keys`` have, or None.

    Args:
        keys (Sequence[str]): State-dict keys of a checkpoint.
    """
    classes = list(HybridBackbone.__subclasses__())
    for cls in classes:
        classes += cls.__subclasses__()
        if cls.third_party_format is not None and cls.is_third_party_checkpoint(keys):
            return cls.third_party_format
    return None
