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
    python tools/misc/model_zoo.py --reuse-counts --skip-readme  # metafiles only, counts as written
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

# Published numbers, config stem -> text of the README's "paper" column: what the number is, whose
# it is, and whether the config can reach it (sources: the papers; sail-sg/volo
# README and its GitHub issue 8; PaddleClas DSNet.md). Nothing here was trained.
_VOLO_TL = ('with NFNet-F6 token labels, which this config does not have; without them the maintainer reports '
            'D1 83.8 and 0.0-0.4 less for larger models, sail-sg/volo#8')
_VOLO_FT = 'fine-tuned with token labels, which this config does not have'
PAPER = {
    'dsnet_t_in1k': 'top-1 79.0 (paper; the converted PaddleClas weights: 79.2 in PaddleClas)',
    'dsnet_s_in1k': 'top-1 82.3 (paper; the converted PaddleClas weights: 82.0 in PaddleClas)',
    'dsnet_b_in1k': 'top-1 83.1 (paper; no such weights are public: the only DS-Net-B weights score 81.8 in '
                    'PaddleClas)',
    'mask_rcnn_dsnet_s_coco': 'DS-Net-S +6.4/+5.5 mAP over ResNet-50 (paper abstract; detector, schedule and '
                              'baseline not named: no target for this config)',
    'volo_d1_in1k': f'top-1 84.2 (paper, {_VOLO_TL})', 'volo_d2_in1k': f'top-1 85.2 (paper, {_VOLO_TL})',
    'volo_d3_in1k': f'top-1 85.4 (paper, {_VOLO_TL})', 'volo_d4_in1k': f'top-1 85.7 (paper, {_VOLO_TL})',
    'volo_d5_in1k': f'top-1 86.1 (paper, {_VOLO_TL})',
    'volo_d1_384_in1k': f'top-1 85.2 (paper, {_VOLO_FT})', 'volo_d2_384_in1k': f'top-1 86.0 (paper, {_VOLO_FT})',
    'volo_d3_448_in1k': f'top-1 86.3 (paper, {_VOLO_FT})', 'volo_d4_448_in1k': f'top-1 86.8 (paper, {_VOLO_FT})',
    'volo_d5_448_in1k': f'top-1 87.0 (paper, {_VOLO_FT})', 'volo_d5_512_in1k': f'top-1 87.1 (paper, {_VOLO_FT})',
    'upernet_volo_d5_ade20k': 'mIoU 54.3, best VOLO with UperNet (paper abstract; variant and test mode not '
                              'named: no config here is its reproduction)',
    'upernet_volo_d5_cityscapes': 'mIoU 84.3, best VOLO with UperNet (paper abstract; variant not named: no '
                                  'config here is its reproduction)',
}
# The papers' numbers for exactly the model of a config, for the metafiles' Results (metric names say
# "(paper)"); the caveats are in PAPER.
PAPER_TOP1 = {'dsnet_t_in1k': 79.0, 'dsnet_s_in1k': 82.3, 'dsnet_b_in1k': 83.1, 'volo_d1_in1k': 84.2,
              'volo_d2_in1k': 85.2, 'volo_d3_in1k': 85.4, 'volo_d4_in1k': 85.7, 'volo_d5_in1k': 86.1,
              'volo_d1_384_in1k': 85.2, 'volo_d2_384_in1k': 86.0, 'volo_d3_448_in1k': 86.3,
              'volo_d4_448_in1k': 86.8, 'volo_d5_448_in1k': 87.0, 'volo_d5_512_in1k': 87.1}
# Published weights of a config's own model (they convert into a checkpoint that tools/test.py
# evaluates with the config), with the code they come from (mmpretrain's 'Converted From').
_PADDLE = 'https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_{}_pretrained.pdparams'
_VOLO = 'https://github.com/sail-sg/volo/releases/download/volo_1/{}'
CONVERTED_FROM = {
    **{f'dsnet_{a[0]}_in1k': dict(
        Weights=_PADDLE.format(a), Code='https://github.com/PaddlePaddle/PaddleClas',
        Command=f'python tools/model_converters/dsnet_to_mmvit.py {_PADDLE.format(a)} checkpoints/dsnet_{a[0]}_in1k.pth')
       for a in ('tiny', 'small', 'base')},
    **{stem: dict(Weights=_VOLO.format(f), Code='https://github.com/sail-sg/volo',
                  Command=f'python tools/model_converters/volo_to_mmvit.py {_VOLO.format(f)} checkpoints/{stem}.pth')
       for stem, f in [('volo_d1_in1k', 'd1_224_84.2.pth.tar'), ('volo_d2_in1k', 'd2_224_85.2.pth.tar'),
                       ('volo_d3_in1k', 'd3_224_85.4.pth.tar'), ('volo_d4_in1k', 'd4_224_85.7.pth.tar'),
                       ('volo_d5_in1k', 'd5_224_86.10.pth.tar'), ('volo_d1_384_in1k', 'd1_384_85.2.pth.tar'),
                       ('volo_d2_384_in1k', 'd2_384_86.0.pth.tar'), ('volo_d3_448_in1k', 'd3_448_86.3.pth.tar'),
                       ('volo_d4_448_in1k', 'd4_448_86.79.pth.tar'), ('volo_d5_448_in1k', 'd5_448_87.0.pth.tar'),
                       ('volo_d5_512_in1k', 'd5_512_87.07.pth.tar')]},
}


def pretrained_backbone(cfg):
    """The metafile's 'Pretrained Backbone' of a config that starts from converted weights: the file
    its init_cfg names, the published weights (None for DMFormer: this package's own ImageNet run)
    and the command that makes the file."""
    from mmvit_hybrid.engine.hooks.pretrained_check_hook import pretrained_source
    init = cfg.model.backbone.get('init_cfg')
    if not (isinstance(init, dict) and init.get('type') == 'Pretrained'):
        return None
    source = pretrained_source(init['checkpoint'])
    command = source['command'] if source else None
    url = next((w for w in (command or '').split() if w.startswith('https://')), None)
    return OrderedDict(Checkpoint=init['checkpoint'], Weights=url, Command=command)


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


def written_counts() -> dict:
    """{config stem: (params, MACs)} of the metafiles as they are now."""
    counts = {}
    for folder in FOLDERS:
        path = osp.join(ROOT, 'configs', folder, 'metafile.yml')
        if osp.isfile(path):
            with open(path) as f:
                for m in yaml.safe_load(f)['Models']:
                    counts[m['Name']] = (m['Metadata']['Parameters'], m['Metadata']['FLOPs'])
    return counts


def measure(get_flops_module, reuse=None):
    """One row per config; ``reuse`` ({stem: (params, MACs)}) skips the count of those configs."""
    from mmengine.config import Config
    rows, cache = [], {}
    for folder in FOLDERS:
        paths = sorted(glob.glob(osp.join(ROOT, 'configs', folder, '*.py')))
        for i, path in enumerate(paths):
            stem = osp.splitext(osp.basename(path))[0]
            cfg = Config.fromfile(path)
            task, dataset, shape = task_of(stem, cfg)
            key = (json.dumps(cfg._cfg_dict.to_dict()['model'], sort_keys=True, default=str), shape)
            if reuse and stem in reuse:
                cache[key] = reuse[stem]
            elif key not in cache:
                cache[key] = count(get_flops_module, path, shape)
            params, macs = cache[key]
            rows.append(dict(folder=folder, stem=stem, config=osp.relpath(path, ROOT), task=task,
                             dataset=dataset, shape=shape, params=params, macs=macs,
                             backbone=cfg.model.backbone.type, arch=str(cfg.model.backbone.get('arch', '')),
                             pretrained=pretrained_backbone(cfg)))
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
                Results=([OrderedDict(Task=r['task'], Dataset=r['dataset'],
                                      Metrics={'Top 1 Accuracy (paper)': PAPER_TOP1[r['stem']]})]
                         if r['stem'] in PAPER_TOP1 else None),
                Weights=None))
            if r['stem'] in PAPER:
                models[-1]['Paper Results'] = PAPER[r['stem']]
            if r['stem'] in CONVERTED_FROM:
                models[-1]['Converted From'] = OrderedDict(CONVERTED_FROM[r['stem']])
            if r.get('pretrained'):
                models[-1]['Pretrained Backbone'] = r['pretrained']
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
    header = ('# Written by tools/misc/model_zoo.py: measured params/FLOPs; no weights trained by this package are '
              'published (Weights: null);\n# "(paper)" results and "Paper Results" are the papers\' numbers, not '
              'measured here; "Converted From" and\n# "Pretrained Backbone" name the published weights, and the '
              'converter command, a config evaluates or starts from.\n')
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
    parser.add_argument('--reuse-counts', action='store_true',
                        help="take params/FLOPs of configs already in the metafiles instead of counting them "
                        "(for changes that leave every model's layers as they are: weights, norms' sync, text)")
    parser.add_argument('--skip-readme', action='store_true', help='write the metafiles and model-index.yml only')
    args = parser.parse_args()
    unknown = set(PAPER) - {osp.splitext(osp.basename(p))[0]
                            for f in FOLDERS for p in glob.glob(osp.join(ROOT, 'configs', f, '*.py'))}
    if unknown:
        sys.exit(f'model_zoo: PAPER names configs that do not exist: {sorted(unknown)}')
    rows = measure(load_get_flops(), written_counts() if args.reuse_counts else None)
    files = metafiles(rows)
    if not args.skip_readme:
        readme = open(osp.join(ROOT, TABLE_DOC)).read()
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
