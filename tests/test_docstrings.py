"""Every public module documents each ``__init__`` argument under Args, and its docstring examples run."""
import doctest
import inspect
import re

import pytest

from mmvit_hybrid.models import BoTNet, DMFormer, VOLO
from mmvit_hybrid.models.backbones.botnet import BoTBlock
from mmvit_hybrid.models.backbones.dmformer import DMFormerBlock
from mmvit_hybrid.models.heads import VOLOHead
from mmvit_hybrid.models.layers import (DMA, ClassAttentionBlock, DMAAblation, MHSABlock, OutlookAttention,
                                        Outlooker, RelPosAttention)


@pytest.mark.parametrize('cls', [
    BoTNet, BoTBlock, RelPosAttention, DMFormer, DMFormerBlock, DMA, DMAAblation, VOLO, VOLOHead, OutlookAttention,
    Outlooker, MHSABlock, ClassAttentionBlock
])
def test_every_init_argument_is_documented(cls):
    doc = inspect.getdoc(cls)
    params = [p for p in inspect.signature(cls.__init__).parameters if p != 'self']
    missing = [p for p in params if not re.search(rf'^\s+(\*\*)?{p} \(', doc, re.M)]
    assert not missing, f'{cls.__name__} docstring lacks {missing}'


@pytest.mark.parametrize('cls', [RelPosAttention, BoTNet, DMA, DMFormer, VOLO])
def test_docstring_examples(cls):
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(cls, globs={}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0
