"""Float32 islands for mmcv's box ops under autocast, as torchvision has for its own.

mmcv 2.1.0's ``nms`` kernels read their boxes as ``float`` (CPU and CUDA) and its ``RoIAlign``
kernels dispatch float, double and half only. Under bfloat16 autocast (CPU autocast, or
``optim_wrapper.dtype=bfloat16`` on CUDA) a Mask R-CNN therefore stops in the RPN
(``expected scalar type Float but found BFloat16``) or in the RoI extractor. torchvision solves
the same problem by registering ``nms`` and ``roi_align`` for autocast: the inputs are cast to
float32 and RoIAlign's output back to the input's dtype (torchvision ``ops/autocast/*.cpp``,
CUDA since 0.8, CPU since 0.17). mmcv's ops are pybind functions that autocast cannot see, so
:func:`enable_mmcv_fp32_autocast` wraps their Python entry points with the same rule.

The wrappers act only while autocast is enabled on the inputs' device and an input is not
float32; everything else reaches mmcv's function unchanged (the original is called with the same
arguments).
"""
import functools
import importlib

import torch

__all__ = ['enable_mmcv_fp32_autocast']


def _needs_fp32(*tensors: torch.Tensor) -> bool:
    device = tensors[0].device.type
    return torch.is_autocast_enabled(device) and any(t.dtype != torch.float32 for t in tensors)


def _fp32_nms_forward(forward):

    @functools.wraps(forward)
    def wrapped(ctx, bboxes, scores, *args):
        if _needs_fp32(bboxes, scores):
            bboxes, scores = bboxes.float(), scores.float()  # indices out: nothing to cast back
        return forward(ctx, bboxes, scores, *args)

    wrapped.mmvit_fp32_island = True
    return wrapped


def _fp32_roi_align(roi_align):

    @functools.wraps(roi_align)
    def wrapped(input, rois, *args):
        if _needs_fp32(input, rois):
            # autograd sees the casts: the gradient returns to ``input`` in its own dtype
            return roi_align(input.float(), rois.float(), *args).to(input.dtype)
        return roi_align(input, rois, *args)

    wrapped.mmvit_fp32_island = True
    return wrapped


def enable_mmcv_fp32_autocast() -> bool:
    """Wrap mmcv's ``NMSop.forward`` and ``roi_align`` (what ``nms``/``batched_nms`` and
    ``RoIAlign`` call), each once per process (a wrapped function carries ``mmvit_fp32_island``).
    Returns False where mmcv has no compiled ops."""
    try:  # the modules, not the functions of the same names that mmcv.ops exports
        nms_module = importlib.import_module('mmcv.ops.nms')
        roi_align_module = importlib.import_module('mmcv.ops.roi_align')
    except ImportError:  # mmcv without compiled ops (mmcv-lite): no nms/RoIAlign to wrap
        return False
    if not getattr(nms_module.NMSop.forward, 'mmvit_fp32_island', False):
        nms_module.NMSop.forward = staticmethod(_fp32_nms_forward(nms_module.NMSop.forward))
    # RoIAlign.forward looks ``roi_align`` up in its module at call time
    if not getattr(roi_align_module.roi_align, 'mmvit_fp32_island', False):
        roi_align_module.roi_align = _fp32_roi_align(roi_align_module.roi_align)
    return True
