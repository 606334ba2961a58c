"""FLOP counting with torch's own dispatcher-level counter.

``torch.utils.flop_counter.FlopCounterMode`` sees every matmul (``einsum``/``@`` included, so the
relative-position logits of BoTNet and the ``attn @ unfold(v)`` of the outlook-attention
reference), convolution and fused scaled-dot-product attention call; mmengine's and fvcore's
module-hook / jit counters miss SDPA, unfold/fold and functional matmuls. It reports FLOPs
(2 per multiply-add); divide by 2 for the MACs that papers call "FLOPs".

Importing this module registers FLOP formulas that torch lacks
(``torch.utils.flop_counter.register_flop_formula``):

* ``aten._scaled_dot_product_flash_attention_for_cpu`` (+ backward): the CPU SDPA kernel, which
  torch's counter does not know and would count as 0. Same formula as torch's CUDA SDPA
  kernels: ``4 * B * heads * Nq * Nk * d`` forward (q @ k^T and attn @ v; the mask addition and
  softmax are not counted, as for every other op), twice that backward.
* ``mmvit_hybrid::outlook_attention_forward`` / ``_grad_value`` / ``_grad_attn`` (the fused op of
  :mod:`mmvit_hybrid.ops.outlook_attention`): the multiply-adds of ``attn @ unfold(v)``, i.e.
  ``2 * B * C * Ho * Wo * K^4`` forward and the same for each of the two gradients, so the
  fused op and the unfold/fold reference give the same count.
"""
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch.utils.flop_counter import (FlopCounterMode, flop_registry, register_flop_formula, sdpa_backward_flop_count,
                                      sdpa_flop_count)

aten = torch.ops.aten


def _register(target, formula):
    """Register ``formula`` for ``target`` unless torch (or an earlier import) already did."""
    if target not in flop_registry:
        register_flop_formula(target)(formula)


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                            **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def outlook_attention_flops(value_shape: Sequence[int], attn_shape: Sequence[int]) -> int:
    """FLOPs of one outlook-attention forward, ``attn @ unfold(value)``: ``2 * B * C * Ho * Wo * K^4``.

    Args:
        value_shape (Sequence[int]): (B, C, H, W).
        attn_shape (Sequence[int]): (B, heads, Ho, Wo, K*K, K*K).
    """
    B, C = value_shape[:2]
    _, _, Ho, Wo, kk, kk2 = attn_shape
    return 2 * B * C * Ho * Wo * kk * kk2


def _outlook_forward_flop(value_shape, attn_shape, *args, out_shape=None, **kwargs) -> int:
    return outlook_attention_flops(value_shape, attn_shape)


def _outlook_grad_value_flop(grad_shape, attn_shape, *args, out_shape=None, **kwargs) -> int:
    return outlook_attention_flops(grad_shape, attn_shape)


def _outlook_grad_attn_flop(grad_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return outlook_attention_flops(value_shape, out_shape)


_register(aten._scaled_dot_product_flash_attention_for_cpu, _sdpa_cpu_flop)
_register(aten._scaled_dot_product_flash_attention_for_cpu_backward, _sdpa_cpu_backward_flop)
try:
    from mmvit_hybrid.ops import ext_available  # loads the extension, registering the op
    if ext_available():
        _register(torch.ops.mmvit_hybrid.outlook_attention_forward, _outlook_forward_flop)
        _register(torch.ops.mmvit_hybrid.outlook_attention_grad_value, _outlook_grad_value_flop)
        _register(torch.ops.mmvit_hybrid.outlook_attention_grad_attn, _outlook_grad_attn_flop)
except (ImportError, AttributeError):  # no compiled op: the reference's bmm is counted instead
    pass


def _default_input(model: torch.nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    if not input_shape or not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f'count_flops: input_shape must be positive ints, e.g. (1, 3, 224, 224), got {input_shape}')
    param = next(model.parameters(), None)
    return torch.zeros(*input_shape, device=param.device if param is not None else 'cpu')


def count_flops(model: torch.nn.Module,
                input_shape: Optional[Sequence[int]] = None,
                inputs: Any = None,
                forward: Optional[Callable[[torch.nn.Module, Any], Any]] = None,
                backward: bool = False,
                by_module: bool = False,
                depth: int = 2):
    """FLOPs (2 x MACs) of one forward of ``model`` in eval mode.

    Args:
        model (nn.Module): The model.
        input_shape (Sequence[int], optional): Shape of a zero input tensor (used when ``inputs``
            is None), e.g. ``(1, 3, 224, 224)``.
        inputs (Any, optional): The input to pass instead of the zero tensor.
        forward (Callable, optional): ``forward(model, inputs)`` to call instead of
            ``model(inputs)`` (e.g. ``model(inputs, samples, mode='tensor')`` for detectors).
        backward (bool): Also count the backward of the sum of the outputs (model in train
            mode). Defaults to False.
        by_module (bool): Also return the per-module counts. Defaults to False.
        depth (int): Module nesting depth of the per-module counts. Defaults to 2.

    Returns:
        int | tuple[int, dict]: Total FLOPs, and with ``by_module`` a dict
        ``{module path: FLOPs}`` (``'Global'`` is the total).
    """
    if inputs is None:
        if input_shape is None:
            raise ValueError('count_flops: give input_shape or inputs')
        inputs = _default_input(model, input_shape)
    forward = forward or (lambda m, x: m(x))
    was_training = model.training
    model.train(backward)
    counter = FlopCounterMode(display=False, depth=depth)
    try:
        with counter:
            if backward:
                outs = forward(model, inputs)
                leaves = [o for o in torch.utils._pytree.tree_leaves(outs) if isinstance(o, torch.Tensor)
                          and o.requires_grad]
                sum(o.float().sum() for o in leaves).backward()
            else:
                with torch.no_grad():
                    forward(model, inputs)
    finally:
        model.train(was_training)
    total = counter.get_total_flops()
    if not by_module:
        return total
    # FlopCounterMode tracks every module; keep those at most ``depth`` levels below the root
    per_module: Dict[str, int] = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()
                                  if name == 'Global' or name.count('.') <= depth}
    return total, per_module


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once).

    Args:
        model (nn.Module): The model.
        trainable_only (bool): Count only parameters with ``requires_grad``. Defaults to False.
    """
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def format_count(n: float, unit: str = '') -> str:
    """1234567 -> '1.235 M' (K, M, G, T)."""
    for scale, prefix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= scale:
            return f'{n / scale:.3f} {prefix}{unit}'
    return f'{n:.0f} {unit}'.rstrip()


__all__ = ['count_flops', 'count_params', 'format_count', 'outlook_attention_flops']
