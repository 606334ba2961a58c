#!/usr/bin/env python
"""Measure every config's model and write the model zoo: ``configs/<folder>/metafile.yml``,
``model-index.yml`` (for ``mim``) and the model-zoo table of docs/model_zoo.md.

Parameters and FLOPs come from ``tools/analysis_tools/get_flops.py`` (whole model, ``mode='tensor'``,
pretrained loading stripped) at the task's input size: COCO 800x1280 (1024x1024 for the
fixed-canvas BoTNet configs), ADE20K 512x512, Cityscapes 512x1024, ImageNet the backbone's
``img_size`` (224 unless the config says otherwise). The paper columns are the papers' numbers,
copied from ``PAPER`` below with their source; nothing here was trained.

Usage::

    python tools/misc/model_zoo.py            # measure, write metafiles, model-index.yml, docs/model_zoo.md table
    python tools/misc/model_zoo.py --check    # measure and fail if any written file would change
"""
import argparse
import glob
import importlib.util
import json
import os.path as osp
import sys
from collections import OrderedDict

import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FOLDERS = OrderedDict(
    dsnet=dict(collection='DS-Net', paper='Dual-stream Network for Visual Recognition',
               url='https://arxiv.org/abs/2105.14734'),
    dmformer=dict(collection='DMFormer', paper='DMFormer: Closing the Gap Between CNN and Vision Transformers',
                  url='https://arxiv.org/abs/2209.07738'),
    volo=dict(collection='VOLO', paper='VOLO: Vision Outlooker for Visual Recognition',
              url='https://arxiv.org/abs/2106.13112'),
    botnet=dict(collection='BoTNet', paper='Bottleneck Transformers for Visual Recognition',
                url='https://arxiv.org/abs/2101.11605'),
)
README_START, README_END = '<!-- model-zoo:start -->', '<!-- model-zoo:end -->'
TABLE_DOC = 'docs/model_zoo.md'  # the file holding the table between those markers

# Published numbers, config stem -> text, with the source (../shared/research/papers.md).
PAPER = {
    'dsnet_t_in1k': 'top-1 79.0 (paper)', 'dsnet_s_in1k': 'top-1 82.3 (paper)',
    'dsnet_b_in1k': 'top-1 83.1 (paper)',
    'mask_rcnn_dsnet_s_coco': 'box/mask AP +6.4/+5.5 over R50 (paper abstract)',
    'volo_d1_in1k': 'top-1 84.2 (paper)', 'volo_d2_in1k': 'top-1 85.2 (paper)',
    'volo_d3_in1k': 'top-1 85.4 (paper)', 'volo_d4_in1k': 'top-1 85.7 (paper)',
    'volo_d5_in1k': 'top-1 86.1 (paper)', 'volo_d1_384_in1k': 'top-1 85.2 (paper)',
    'volo_d2_384_in1k': 'top-1 86.0 (paper)', 'volo_d3_448_in1k': 'top-1 86.3 (paper)',
    'volo_d4_448_in1k': 'top-1 86.8 (paper)', 'volo_d5_448_in1k': 'top-1 87.0 (paper)',
    'volo_d5_512_in1k': 'top-1 87.1 (paper)',
    'upernet_volo_d5_ade20k': 'mIoU 54.3, best VOLO (paper; variant not stated)',
    'upernet_volo_d5_cityscapes': 'mIoU 84.3, best VOLO (paper; variant not stated)',
}


def load_get_flops():
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'get_flops.py')
    spec = importlib.util.spec_from_file_location('get_flops', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def task_of(stem: str, cfg) -> tuple:
    """(task name, dataset name, input shape (H, W)) of a config."""
    if stem.endswith('_coco'):
        shape = (1024, 1024) if '_1024' in stem else (800, 1280)
        task = 'Object Detection' if 'mask_head' not in cfg.model.get('roi_head', {}) else 'Instance Segmentation'
        return task, 'COCO', shape
    if stem.endswith('_ade20k'):
        return 'Semantic Segmentation', 'ADE20K', (512, 512)
    if stem.endswith('_cityscapes'):
        return 'Semantic Segmentation', 'Cityscapes', (512, 1024)
    if stem.endswith('_in1k'):
        size = cfg.model.backbone.get('img_size', 224)
        size = size if isinstance(size, int) else size[0]
        return 'Image Classification', 'ImageNet-1k', (size, size)
    raise ValueError(f'model_zoo: cannot tell the task of {stem}; name configs <...>_{{coco,ade20k,cityscapes,in1k}}.py')


def count(gf, path: str, shape: tuple) -> tuple:
    """(params, MACs) of the config's whole model at ``shape``, through get_flops.py's builders.

    Segmentors and classifiers run on the ``meta`` device (shapes only, no arithmetic: the same
    dispatcher-level count, seconds instead of minutes on a CPU); detectors run on the CPU
    because their RPN post-processing (NMS) needs real values.
    """
    from mmvit_hybrid.utils.complexity import count_flops, count_params
    model, scope = gf.build_model(gf.load_config(path))
    module, x, forward = gf.model_forward(model, scope, 1, shape[0], shape[1], False)
    if scope != 'mmdet':
        module, x = module.to('meta'), x.to('meta')
    return count_params(module), count_flops(module, inputs=x, forward=forward) // 2


def measure(get_flops_module):
    from mmengine.config import Config
    rows, cache = [], {}
    for folder in FOLDERS:
        paths = sorted(glob.glob(osp.join(ROOT, 'configs', folder, '*.py')))
        for i, path in enumerate(paths):
            stem = osp.splitext(osp.basename(path))[0]
            cfg = Config.fromfile(path)
            task, dataset, shape = task_of(stem, cfg)
            key = (json.dumps(cfg._cfg_dict.to_dict()['model'], sort_keys=True, default=str), shape)
            if key not in cache:
                cache[key] = count(get_flops_module, path, shape)
            params, macs = cache[key]
            rows.append(dict(folder=folder, stem=stem, config=osp.relpath(path, ROOT), task=task,
                             dataset=dataset, shape=shape, params=params, macs=macs,
                             backbone=cfg.model.backbone.type, arch=str(cfg.model.backbone.get('arch', ''))))
            print(f'[{folder} {i + 1}/{len(paths)}] {stem}: {params / 1e6:.2f}M params, '
                  f'{macs / 1e9:.2f} GMACs at {shape[0]}x{shape[1]}', flush=True)
    return rows


def metafiles(rows):
    """{path: yaml text} of the per-folder metafiles and model-index.yml."""
    files = {}
    for folder, info in FOLDERS.items():
        models = []
        for r in (r for r in rows if r['folder'] == folder):
            models.append(OrderedDict(
                Name=r['stem'], **{'In Collection': info['collection']}, Config=r['config'],
                Metadata=OrderedDict(**{
                    'Training Data': r['dataset'],
                    'Parameters': r['params'],
                    'FLOPs': r['macs'],
                    'Input Size': f"{r['shape'][0]}x{r['shape'][1]}",
                    'Backbone': f"{r['backbone']} {r['arch']}".strip(),
                }),
                Results=None, Weights=None))
        doc = OrderedDict(
            Collections=[OrderedDict(Name=info['collection'], Metadata=OrderedDict(Architecture=[info['collection']]),
                                     Paper=OrderedDict(Title=info['paper'], URL=info['url']),
                                     README=(f'configs/{folder}/README.md'
                                             if osp.isfile(osp.join(ROOT, 'configs', folder, 'README.md'))
                                             else 'README.md'))],
            Models=models)
        files[f'configs/{folder}/metafile.yml'] = dump(doc)
    files['model-index.yml'] = dump(OrderedDict(Import=[f'configs/{f}/metafile.yml' for f in FOLDERS]))
    return files


def dump(doc) -> str:
    def plain(x):
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, list):
            return [plain(v) for v in x]
        return x
    header = '# Written by tools/misc/model_zoo.py (measured params/FLOPs; no trained weights are published).\n'
    return header + yaml.safe_dump(plain(doc), sort_keys=False, width=120)


def readme_table(rows) -> str:
    lines = [
        README_START,
        '| config | task | backbone | input | params (M) | GMACs | paper |',
        '| --- | --- | --- | --- | --- | --- | --- |',
    ]
    for r in rows:
        lines.append(f"| `{r['config']}` | {r['dataset']} {r['task'].lower()} | {r['backbone']} {r['arch']} | "
                     f"{r['shape'][0]}x{r['shape'][1]} | {r['params'] / 1e6:.2f} | {r['macs'] / 1e9:.1f} | "
                     f"{PAPER.get(r['stem'], '')} |")
    lines.append(README_END)
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--check', action='store_true', help='fail if a written file would change')
    args = parser.parse_args()
    unknown = set(PAPER) - {osp.splitext(osp.basename(p))[0]
                            for f in FOLDERS for p in glob.glob(osp.join(ROOT, 'configs', f, '*.py'))}
    if unknown:
        sys.exit(f'model_zoo: PAPER names configs that do not exist: {sorted(unknown)}')
    rows = measure(load_get_flops())
    files = metafiles(rows)
    readme_path = osp.join(ROOT, TABLE_DOC)
    readme = open(readme_path).read()
    if README_START not in readme or README_END not in readme:
        sys.exit(f'model_zoo: {TABLE_DOC} needs the markers {README_START} and {README_END}')
    before, rest = readme.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    files[TABLE_DOC] = before + readme_table(rows) + after
    changed = []
    for rel, text in files.items():
        path = osp.join(ROOT, rel)
        old = open(path).read() if osp.exists(path) else None
        if old != text:
            changed.append(rel)
            if not args.check:
                with open(path, 'w') as f:
                    f.write(text)
    print(('out of date: ' if args.check else 'written: ') + (', '.join(changed) or 'nothing'))
    if args.check and changed:
        sys.exit(1)


if __name__ == '__main__':
    main()
