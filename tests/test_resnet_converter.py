"""tools/model_converters/resnet_to_botnet.py on the ResNet-50 layouts users have: timm's
``resnet50`` (hub files are ``model.safetensors``) and mmpretrain's ResNet-50 classifier
(``{'state_dict': ...}``, ``backbone.*`` + ``head.fc.*``), both built by their own libraries with
random weights (BatchNorm affines and statistics drawn too). BoT50 keeps every ResNet layer up to
the c5 attention, so after conversion its c2-c4 outputs must equal the source network's stage
outputs; c5 must not (attention replaces the 3x3 convs of layer4). torchvision's layout is
covered by tests/test_botnet.py.
"""
import runpy
import sys
from pathlib import Path

import pytest
import torch

from mmvit_hybrid.models import BoTNet

ROOT = Path(__file__).resolve().parents[1]
CONVERTER = ROOT / 'tools/model_converters/resnet_to_botnet.py'
IMG = 128  # BoT50 img_size and test input: c5 is 4x4
NEW = 24  # 3 blocks x (qkv, 2 tables) + 3 x 5 BN tensors after the attention

pytestmark = pytest.mark.usefixtures('one_thread')


def randomize_norms(model: torch.nn.Module, seed: int):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model.eval()


def convert_with_tool(src: Path, dst: Path, capsys) -> str:
    old = sys.argv
    sys.argv = [str(CONVERTER), str(src), str(dst), '--arch', '50', '--img-size', str(IMG), str(IMG)]
    try:
        runpy.run_path(str(CONVERTER), run_name='__main__')
    finally:
        sys.argv = old
    return capsys.readouterr().out


def bot50(checkpoint: Path) -> BoTNet:
    model = BoTNet(arch='50', img_size=IMG, init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)))
    model.init_weights()  # strict
    return model.eval()


def timm_resnet_stages(r50, x) -> list:
    """The outputs of timm ResNet's layer1..layer4 for ``x``."""
    with torch.no_grad():
        h = r50.maxpool(r50.act1(r50.bn1(r50.conv1(x))))
        stages = []
        for layer in (r50.layer1, r50.layer2, r50.layer3, r50.layer4):
            h = layer(h)
            stages.append(h)
    return stages


def assert_stages_agree(botnet, stage_outputs, x):
    with torch.no_grad():
        ours = botnet(x)
    for i in range(3):
        scale = stage_outputs[i].abs().max()
        err = (ours[i] - stage_outputs[i]).abs().max() / scale
        assert err < 1e-5, f'c{i + 2}: {err:.2e}'
    assert (ours[3] - stage_outputs[3]).abs().max() > 1e-2 * stage_outputs[3].abs().max()  # c5 is attention


def test_timm_resnet50_safetensors(tmp_path, capsys):
    import timm  # requirements/tests.txt
    from safetensors.torch import save_file
    torch.manual_seed(1)
    r50 = randomize_norms(timm.create_model('resnet50', pretrained=False), seed=1)
    src = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in r50.state_dict().items()}, str(src))
    out = convert_with_tool(src, tmp_path / 'bot50.pth', capsys)
    assert 'source layout: torchvision/timm' in out
    assert f'newly initialised (BoTNet default init): {NEW} tensors' in out
    assert '  fc.weight' in out and '  layer4.2.conv2.weight' in out  # dropped
    x = torch.randn(2, 3, IMG, IMG)
    assert_stages_agree(bot50(tmp_path / 'bot50.pth'), timm_resnet_stages(r50, x), x)


def test_mmpretrain_resnet50_classifier(tmp_path, capsys):
    """mmpretrain's own ResNet-50 model config (``resnet50_8xb32_in1k``'s), registry-built."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg_file = tmp_path / 'r50.py'
    cfg_file.write_text("_base_ = ['mmpretrain::_base_/models/resnet50.py']\n")
    torch.manual_seed(2)
    classifier = MODELS.build(Config.fromfile(str(cfg_file)).model)
    classifier.init_weights()
    randomize_norms(classifier, seed=2)
    src = tmp_path / 'resnet50_8xb32_in1k.pth'
    torch.save({'meta': {'epoch': 100, 'mmpretrain_version': '1.2.0'}, 'state_dict': classifier.state_dict()}, src)
    out = convert_with_tool(src, tmp_path / 'bot50.pth', capsys)
    assert 'source layout: mmpretrain/mmdet' in out
    assert f'newly initialised (BoTNet default init): {NEW} tensors' in out
    assert '  head.fc.weight' in out and '  head.fc.bias' in out  # dropped, listed
    backbone = classifier.backbone
    backbone.out_indices = (0, 1, 2, 3)
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        stages = backbone(x)
    assert_stages_agree(bot50(tmp_path / 'bot50.pth'), stages, x)


def test_mmpretrain_and_torchvision_resnet_share_names():
    """Why one name table serves all: mmpretrain's ResNet keys are torchvision's (stem conv1/bn1,
    layer{i}.{j}.conv{1,2,3}/bn{1,2,3}, downsample.{0,1})."""
    import torchvision
    from mmpretrain.models.backbones import ResNet
    mmpretrain_keys = set(ResNet(depth=50).state_dict())  # not on meta: its drop-path list calls .item()
    tv_keys = set(torchvision.models.resnet50(weights=None).state_dict())
    assert mmpretrain_keys == tv_keys - {'fc.weight', 'fc.bias'}


def test_other_layouts_are_named_in_the_error():
    import timm  # requirements/tests.txt
    converter = runpy.run_path(str(CONVERTER), run_name='resnet_to_botnet')
    with torch.device('meta'):
        botnet = BoTNet(arch='50')
        resnet50d = timm.create_model('resnet50d', pretrained=False).state_dict()
    with pytest.raises(ValueError, match=r'(?s)no counterpart.*conv1\.weight.*timm resnet50d'):
        converter['convert'](resnet50d, botnet)
    with pytest.raises(ValueError, match=r'not a ResNet checkpoint.*torchvision or timm.*mmpretrain'):
        converter['convert']({'patch_embed.proj.weight': torch.zeros(1)}, botnet)
