"""Where this package registers its modules.

Backbones and necks go into MMEngine's root ``MODELS`` registry. mmdet, mmseg and mmpretrain each
build from a child of that root, and a key without a scope prefix is looked up in the current
registry and then in its parents, so ``dict(type='DSNet')`` builds from an mmdet, mmseg or
mmpretrain config alike, with one registration.

Batch augmentations (MixToken) go into mmpretrain's ``BATCH_AUGMENTS``, the one registry here that
has no parent in MMEngine's root, so it is imported from mmpretrain (which the classification
head needs anyway).
"""
from mmengine.registry import MODELS
from mmpretrain.registry import BATCH_AUGMENTS

__all__ = ['BATCH_AUGMENTS', 'MODELS']
