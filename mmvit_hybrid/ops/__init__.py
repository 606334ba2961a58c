"""Custom operators. Each op has a compiled kernel in ``mmvit_hybrid._ext`` (built from
``mmvit_hybrid/ops/csrc`` by ``setup.py``) and a pure-PyTorch reference that is used, with one
warning, when the extension is missing."""
from .outlook_attention import (ext_available, outlook_attention,
                                outlook_attention_reference)

__all__ = ['outlook_attention', 'outlook_attention_reference', 'ext_available']
