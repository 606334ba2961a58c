"""Where this package registers its modules.

Backbones and necks go into MMEngine's root ``MODELS`` registry. mmdet, mmseg and mmpretrain each
build from a child of that root, and a key without a scope prefix is looked up in the current
registry and then in its parents, so ``dict(type='DSNet')`` builds from an mmdet, mmseg or
mmpretrain config alike, with one registration and no import of those libraries here.
"""
from mmengine.registry import MODELS

__all__ = ['MODELS']
