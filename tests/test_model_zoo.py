"""The model zoo: model-index.yml covers every backbone config, its measured columns reproduce with
tools/analysis_tools/get_flops.py, and `mim search` lists the configs."""
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


@pytest.mark.parametrize('name, shape', [('dsnet_t_in1k', (224, 224)), ('upernet_dsnet_t_ade20k', (512, 512))])
def test_measured_columns_reproduce_with_get_flops(models, name, shape):
    """The index's numbers (segmentors counted on the meta device) equal a real CPU count by
    get_flops.py, and the README table shows the same row."""
    get_flops = load_tool('tools/analysis_tools/get_flops.py')
    result = get_flops.get_flops(osp.join(ROOT, models[name].config), shape=list(shape), depth=0)
    assert models[name].metadata.parameters == result['params']
    assert models[name].metadata.flops == result['macs']
    with open(osp.join(ROOT, 'README.md')) as f:
        row = next(line for line in f if f'/{name}.py`' in line)
    assert f"| {result['params'] / 1e6:.2f} | {result['macs'] / 1e9:.1f} |" in row, row


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
