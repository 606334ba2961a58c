"""Every relative link and every repository path named in README.md and docs/*.md exists.

Links: ``[text](target)`` with a relative target must name an existing file or folder, and a
``#anchor`` into a Markdown file must be one of its headings (GitHub's anchor rule). Paths: any
``tools/...``, ``configs/...``, ``demo/...``, ``benchmarks/...``, ``docs/...``, ``tests/...`` or
``mmvit_hybrid/...`` in the text (commands in code blocks included) must exist; a ``*`` is a glob
that must match something. Placeholders (``<name>``, ``{a,b}``, ``$VAR``, ``...``) are not paths.
"""
import glob
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = ['README.md'] + sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'docs', '*.md')))
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')
PATH = re.compile(r'(?<![\w./-])((?:tools|configs|demo|benchmarks|docs|tests|mmvit_hybrid)/[\w.*/-]*)')
PLACEHOLDER = re.compile(r'[<>{}$]|\.\.\.|\bX\b')


def github_anchor(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(path):
    with open(path) as f:
        text = re.sub(r'```.*?```', '', f.read(), flags=re.S)  # '#' lines in code are not headings
    return {github_anchor(m) for m in re.findall(r'^#+\s+(.*)$', text, re.M)}


def links(doc):
    """The relative link targets of ``doc`` (an absolute path)."""
    with open(doc) as f:
        text = f.read()
    return [t for t in LINK.findall(text) if not re.match(r'[a-z]+:', t)]  # http:, https:, mailto:


def paths(doc):
    """The repository paths ``doc`` names, placeholders left out."""
    with open(doc) as f:
        text = f.read()
    found = set()
    for line in text.splitlines():
        for m in PATH.finditer(line):
            path = m.group(1).split('::')[0].rstrip('.,:;)')
            after = line[m.end():m.end() + 1]
            if PLACEHOLDER.search(path) or (after and after in '<{$'):
                continue  # configs/dsnet/dsnet_<t|s|b>_in1k.py and the like
            found.add(path)
    return sorted(found)


def broken_links(doc):
    broken = []
    for target in links(doc):
        file, _, anchor = target.partition('#')
        path = osp.normpath(osp.join(osp.dirname(doc), file)) if file else doc
        if not osp.exists(path):
            broken.append(f'{target}: no such file')
        elif anchor and path.endswith('.md') and anchor not in anchors(path):
            broken.append(f'{target}: no heading with that anchor')
    return broken


def missing_paths(doc, root=ROOT):
    return [p for p in paths(doc) if not glob.glob(osp.join(root, p))]


@pytest.mark.parametrize('doc', DOCS)
def test_relative_links_resolve(doc):
    broken = broken_links(osp.join(ROOT, doc))
    assert not broken, broken


@pytest.mark.parametrize('doc', DOCS)
def test_named_paths_exist(doc):
    missing = missing_paths(osp.join(ROOT, doc))
    assert not missing, missing


def test_the_checks_see_broken_links_and_paths(tmp_path):
    """The checks themselves: a broken link, a wrong anchor and a missing command path are found;
    placeholders and URLs are not taken for paths."""
    (tmp_path / 'other.md').write_text('# Other\n\n## Install into your own environment\n')
    doc = tmp_path / 'doc.md'
    doc.write_text('# Quick start\n[ok](other.md#install-into-your-own-environment) [bad](docs/nothere.md) '
                   '[anchor](#quick-start) [wrong](other.md#nowhere) [web](https://example.com/x)\n'
                   '```bash\n# not a heading\npython tools/train.py configs/dsnet/dsnet_<t|s|b>_in1k.py\n'
                   'python tools/not_a_tool.py configs/*/README.md tests/test_dsnet.py::test_x.\n```\n')
    assert broken_links(str(doc)) == ['docs/nothere.md: no such file',
                                      'other.md#nowhere: no heading with that anchor']
    assert paths(str(doc)) == ['configs/*/README.md', 'docs/nothere.md', 'tests/test_dsnet.py',
                               'tools/not_a_tool.py', 'tools/train.py']
    assert missing_paths(str(doc)) == ['docs/nothere.md', 'tools/not_a_tool.py']
    assert anchors(str(doc)) == {'quick-start'}


def readme_config_blocks():
    """The complete configs the README shows: ```python blocks whose first line names a file."""
    with open(osp.join(ROOT, 'README.md')) as f:
        blocks = re.findall(r'```python\n(# (my_\w+\.py).*?)```', f.read(), re.S)
    return blocks


def test_readme_backbone_swap_config_builds_and_runs(tmp_path):
    """The README's backbone swap is a complete mmdet config: it parses (mmdet:: base, custom_imports),
    builds, and its neck takes the backbone's outputs (a forward through backbone + FPN)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    blocks = [b for b in readme_config_blocks() if 'mmdet::' in b[0]]
    assert blocks, 'the README shows no mmdet backbone-swap config'
    text, name = blocks[0]
    (tmp_path / name).write_text(text)
    cfg = Config.fromfile(str(tmp_path / name))
    assert 'depth' not in cfg.model.backbone  # _delete_ dropped ResNet's arguments
    cfg.model.backbone.init_cfg = None  # no weight file here
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    assert type(model.backbone).__name__ == cfg.model.backbone.type
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == [cfg.model.neck.out_channels] * cfg.model.neck.num_outs
