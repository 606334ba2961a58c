import pytest
import torch
from mmdet.models.necks import FPN

from mmvit_hybrid.models import DSFPN
from mmvit_hybrid.models.layers import DualStreamBlock

IN_CHANNELS = [16, 32, 64, 64]


def pyramid(batch=1, size=(64, 96)):
    h, w = size
    return tuple(torch.rand(batch, c, h // 4 // 2**i, w // 4 // 2**i) for i, c in enumerate(IN_CHANNELS))


@pytest.mark.parametrize('size', [(64, 96), (83, 129)])
def test_dsfpn_shapes_match_fpn(size):
    """Same levels and shapes as mmdet's FPN with the same arguments (Mask R-CNN layout)."""
    kwargs = dict(in_channels=IN_CHANNELS, out_channels=32, num_outs=5)
    inputs = pyramid(size=size)
    neck = DSFPN(num_heads=2, **kwargs).eval()
    outs, ref = neck(inputs), FPN(**kwargs).eval()(inputs)
    assert len(outs) == 5
    assert [o.shape for o in outs] == [o.shape for o in ref]
    assert all(torch.isfinite(o).all() for o in outs)
    assert sum(isinstance(m, DualStreamBlock) for m in neck.modules()) == 4


def test_dsfpn_retinanet_layout():
    """C3-C5 in, P3-P7 out, extra convs on the input, as RetinaNet uses FPN."""
    neck = DSFPN(in_channels=IN_CHANNELS[1:], out_channels=32, num_outs=5, start_level=0,
                 add_extra_convs='on_input', global_strides=(4, 2, 1), num_heads=2).eval()
    outs = neck(pyramid()[1:])
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]


def test_dsfpn_blocks_change_the_output_and_get_gradients():
    kwargs = dict(in_channels=IN_CHANNELS, out_channels=32, num_outs=5)
    neck = DSFPN(num_heads=2, **kwargs)
    fpn = FPN(**kwargs)
    # copy the FPN convs so that only the dual-stream blocks differ
    fpn_state = {}
    for k, v in fpn.state_dict().items():
        parts = k.split('.')
        if parts[0] == 'fpn_convs' and int(parts[1]) < 4:
            k = '.'.join(parts[:2] + ['conv'] + parts[2:])
        fpn_state[k] = v
    missing = neck.load_state_dict(fpn_state, strict=False).missing_keys
    assert missing and all('dual_stream' in k for k in missing)
    inputs = pyramid(batch=2)
    outs = neck.train()(inputs)
    assert not torch.allclose(outs[0], fpn.train()(inputs)[0])
    sum(o.mean() for o in outs).backward()
    no_grad = [n for n, p in neck.named_parameters() if p.grad is None]
    assert not no_grad


def test_dsfpn_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match='global_strides'):
        DSFPN(in_channels=IN_CHANNELS, out_channels=32, num_outs=5, global_strides=(8, 4))
    with pytest.raises(ValueError, match='divisible by num_heads'):
        DSFPN(in_channels=IN_CHANNELS, out_channels=32, num_outs=5, num_heads=3)
    with pytest.raises(TypeError, match='globl_strides'):
        DSFPN(in_channels=IN_CHANNELS, out_channels=32, num_outs=5, globl_strides=(8, 4, 2, 1))
    neck = DSFPN(in_channels=[16, 32, 64, 128], out_channels=32, num_outs=5, num_heads=2)
    with pytest.raises(ValueError, match=r'in_channels=\[16, 32, 64, 128\] but the backbone gives \[16, 32, 64, 64\]'):
        neck(pyramid())
    with pytest.raises(ValueError, match='3 feature maps'):
        neck(pyramid()[:3])
