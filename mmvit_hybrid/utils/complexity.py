"""FLOP counting with torch's own dispatcher-level counter.

``torch.utils.flop_counter.FlopCounterMode`` sees every matmul, convolution and fused
scaled-dot-product attention call (mmengine's and fvcore's module-hook counters miss SDPA).
It reports FLOPs (2 per multiply-add); divide by 2 for the MACs that papers call "FLOPs".
"""
from typing import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def count_flops(model: torch.nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs (2 x MACs) of one forward of ``model`` in eval mode on a zero tensor of ``input_shape``."""
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    x = torch.zeros(*input_shape, device=param.device if param is not None else 'cpu')
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops()
