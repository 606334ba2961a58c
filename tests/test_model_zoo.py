"""The model zoo: model-index.yml covers every backbone config, its measured columns reproduce with
tools/misc/model_zoo.py's count (the meta device, which equals a real CPU count by
tools/analysis_tools/get_flops.py), they agree with independent anchors (the DS-Net paper's size
and cost; UperNet's head counted analytically from its layer list), and `mim search` lists the
configs."""
import glob
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FOLDERS = ('dsnet', 'dmformer', 'volo', 'botnet')


def load_tool(rel):
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(rel))[0], osp.join(ROOT, rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def models():
    from modelindex.load_model_index import load
    index = load(osp.join(ROOT, 'model-index.yml'))
    return {m.name: m for m in index.models}


def test_every_config_is_in_the_index(models):
    stems = {osp.splitext(osp.basename(p))[0] for f in FOLDERS for p in glob.glob(osp.join(ROOT, 'configs', f, '*.py'))}
    assert stems == set(models), f'missing {sorted(stems - set(models))}, extra {sorted(set(models) - stems)}'
    for name, model in models.items():
        assert osp.isfile(osp.join(ROOT, model.config)), model.config
        assert model.metadata.parameters > 0 and model.metadata.flops > 0, name


ZOO_ROWS = [('dsnet_t_in1k', (224, 224)), ('upernet_dsnet_t_ade20k', (512, 512))]


@pytest.mark.parametrize('name, shape', ZOO_ROWS)
def test_measured_columns_reproduce(models, name, shape):
    """The index's numbers are model_zoo.py's count (meta device) at the row's input size, and the
    table of docs/model_zoo.md shows the same row."""
    model_zoo, get_flops = load_tool('tools/misc/model_zoo.py'), load_tool('tools/analysis_tools/get_flops.py')
    params, macs = model_zoo.count(get_flops, osp.join(ROOT, models[name].config), shape)
    assert (models[name].metadata.parameters, models[name].metadata.flops) == (params, macs)
    with open(osp.join(ROOT, 'docs', 'model_zoo.md')) as f:
        row = next(line for line in f if f'/{name}.py`' in line)
    assert f"| {params / 1e6:.2f} | {macs / 1e9:.1f} |" in row, row


@pytest.mark.parametrize('name', [name for name, _ in ZOO_ROWS])
def test_meta_device_count_equals_real_cpu_count(models, name):
    """model_zoo.py counts segmentors and classifiers on the meta device; get_flops.py runs the
    real CPU forward. Same numbers (at a small input: the count does not depend on the values)."""
    model_zoo, get_flops = load_tool('tools/misc/model_zoo.py'), load_tool('tools/analysis_tools/get_flops.py')
    config = osp.join(ROOT, models[name].config)
    real = get_flops.get_flops(config, shape=[96, 128], depth=0)
    assert model_zoo.count(get_flops, config, (96, 128)) == (real['params'], real['macs'])


def test_dsnet_t_row_matches_the_paper(models):
    """DS-Net-T, published: 10.5M parameters, 1.8 GMACs at 224 (PaddleClas DSNet.md)."""
    meta = models['dsnet_t_in1k'].metadata
    assert abs(meta.parameters / 10.5e6 - 1) < 0.01, meta.parameters
    assert abs(meta.flops / 1.8e9 - 1) < 0.05, meta.flops


def uperhead_counts(in_channels, maps, channels, num_classes, pool_scales=(1, 2, 3, 6)):
    """(params, MACs) of mmseg's UPerHead written out from its layer list: a PPM 1x1 ConvModule per
    pool scale on the last level, a 3x3 bottleneck over [last level, pooled maps], 1x1 laterals and
    3x3 FPN convs on the other levels, a 3x3 fpn_bottleneck over the 4 concatenated levels and the
    1x1 classifier (with bias); ConvModules with BN have no bias; ``maps`` are the levels' sides."""
    bn = 2 * channels
    layers = [(s * s, in_channels[-1], 1) for s in pool_scales]  # (pixels, in, kernel area)
    layers.append((maps[-1]**2, in_channels[-1] + len(pool_scales) * channels, 9))
    layers += [(m * m, c, 1) for m, c in zip(maps[:-1], in_channels[:-1])]
    layers += [(m * m, channels, 9) for m in maps[:-1]]
    layers.append((maps[0]**2, len(in_channels) * channels, 9))
    params = sum(c * k * channels + bn for _, c, k in layers) + channels * num_classes + num_classes
    macs = sum(n * c * k * channels for n, c, k in layers) + maps[0]**2 * channels * num_classes
    return params, macs


def test_upernet_row_is_backbone_plus_analytic_heads(models):
    """UperNet DS-Net-T at 512: the DS-Net-T backbone (anchored to the paper above) plus the
    analytic UPerHead and FCN auxiliary head (its params; mode='tensor' runs the decode head only)."""
    import torch

    from mmvit_hybrid.utils.complexity import count_flops, count_params
    get_flops = load_tool('tools/analysis_tools/get_flops.py')
    model, _ = get_flops.build_model(get_flops.load_config(osp.join(ROOT, models['upernet_dsnet_t_ade20k'].config)))
    backbone = model.backbone.to('meta')
    backbone_macs = count_flops(backbone, inputs=torch.empty(1, 3, 512, 512, device='meta')) // 2
    head_params, head_macs = uperhead_counts([64, 128, 320, 512], [128, 64, 32, 16], 512, 150)
    aux_params = 320 * 256 * 9 + 2 * 256 + 256 * 150 + 150  # 3x3 ConvModule + BN, 1x1 classifier
    meta = models['upernet_dsnet_t_ade20k'].metadata
    assert meta.parameters == count_params(backbone) + head_params + aux_params
    assert meta.flops == backbone_macs + head_macs


def test_paper_numbers_name_existing_configs():
    model_zoo = load_tool('tools/misc/model_zoo.py')
    for stem in model_zoo.PAPER:
        assert glob.glob(osp.join(ROOT, 'configs', '*', f'{stem}.py')), stem
        assert '(paper' in model_zoo.PAPER[stem], 'paper numbers must be labelled as the paper\'s'


def test_mim_search_lists_the_configs():
    result = subprocess.run([osp.join(osp.dirname(sys.executable), 'mim'), 'search', 'mmvit_hybrid'],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ['mask_rcnn_dsnet_s_coco', 'volo_d1_in1k', 'upernet_botnet50_ade20k', 'dmformer_s_in1k']:
        assert name in result.stdout, result.stdout[-2000:]


def test_metafiles_are_valid_yaml_with_collections():
    for folder in FOLDERS:
        with open(osp.join(ROOT, 'configs', folder, 'metafile.yml')) as f:
            doc = yaml.safe_load(f)
        assert doc['Collections'][0]['Paper']['URL'].startswith('https://arxiv.org/abs/')
        assert all(m['In Collection'] == doc['Collections'][0]['Name'] for m in doc['Models'])
