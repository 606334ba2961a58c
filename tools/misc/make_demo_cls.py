#!/usr/bin/env python
"""Write a small, deterministic synthetic image-classification dataset in ImageFolder layout.

Each image shows one shape on a smooth, noisy background; the class is the shape: circle,
rectangle, triangle or ring, with random size, position, rotation and colour (the colour says
nothing about the class). Every class gets the same number of images per split.

Layout (what mmpretrain's ``CustomDataset`` and torchvision's ``ImageFolder`` read)::

    OUT/train/circle/000000.png ...  OUT/train/ring/...
    OUT/val/circle/000000.png ...    OUT/val/ring/...

Only numpy and the standard library are used (the PNG encoder of make_demo_ade.py), so the output
is byte-identical on every run with the same arguments.

Example::

    python tools/misc/make_demo_cls.py --out data/demo_cls --num-train 200 --num-val 50
"""
import argparse
import os
import os.path as osp
import sys
import time

import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from make_demo_ade import background, write_png  # noqa: E402

CLASSES = ('circle', 'rectangle', 'triangle', 'ring')
MIN_CONTRAST = 120  # L1 distance (sum over RGB) between shape and background colours


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default='data/demo_cls', help='output folder (default: data/demo_cls)')
    p.add_argument('--num-train', type=int, default=200,
                   help='training images per class (default: 200)')
    p.add_argument('--num-val', type=int, default=50, help='validation images per class (default: 50)')
    p.add_argument('--img-size', type=int, default=32, help='square image side in pixels (default: 32)')
    p.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    args = p.parse_args()
    if args.img_size < 32:
        p.error('--img-size must be at least 32')
    if args.num_train < 1 or args.num_val < 1:
        p.error('--num-train and --num-val must be positive')
    return args


def shape_mask(rng, shape, size, yy, xx):
    """Boolean mask of one random shape of class ``shape``, inside the image."""
    r = rng.uniform(0.25, 0.42) * size
    cy, cx = rng.uniform(r, size - r), rng.uniform(r, size - r)
    dy, dx = yy + 0.5 - cy, xx + 0.5 - cx
    t = rng.uniform(0, np.pi)
    if shape == 'circle':
        return dy**2 + dx**2 <= r**2
    if shape == 'ring':
        d2 = dy**2 + dx**2
        return (d2 <= r**2) & (d2 >= (r * rng.uniform(0.45, 0.6))**2)
    if shape == 'rectangle':
        aspect = rng.uniform(0.5, 1.0)
        hw = r / np.sqrt(1 + aspect**2)
        u = dx * np.cos(t) + dy * np.sin(t)
        v = -dx * np.sin(t) + dy * np.cos(t)
        return (np.abs(u) <= hw) & (np.abs(v) <= hw * aspect)
    if shape == 'triangle':
        angles = t + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, size=3)
        vx, vy = r * np.cos(angles), r * np.sin(angles)
        inside = np.ones((size, size), bool)
        for i in range(3):
            j = (i + 1) % 3
            inside &= (vx[j] - vx[i]) * (dy - vy[i]) - (vy[j] - vy[i]) * (dx - vx[i]) >= 0
        return inside
    raise ValueError(shape)


def make_image(rng, cls, size):
    img = background(rng, size, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask = shape_mask(rng, CLASSES[cls], size, yy, xx)
    bg_mean = img.reshape(-1, 3).mean(0)
    for _ in range(100):
        colour = rng.uniform(0, 255, size=3)
        if np.abs(colour - bg_mean).sum() >= MIN_CONTRAST:
            break
    painted = colour + rng.normal(0, 6, size=(size, size, 3))
    img[mask] = painted[mask]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main():
    args = parse_args()
    start = time.time()
    train_rng, val_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(2))
    print(f'make_demo_cls: {args.img_size}x{args.img_size} images, seed {args.seed}, '
          f'classes {", ".join(CLASSES)} -> {args.out}')
    for split, num, rng in (('train', args.num_train, train_rng), ('val', args.num_val, val_rng)):
        for name in CLASSES:
            os.makedirs(osp.join(args.out, split, name), exist_ok=True)
        # classes interleaved, so every class draws from the whole random stream
        for i in range(num):
            for cls, name in enumerate(CLASSES):
                img = make_image(rng, cls, args.img_size)
                write_png(osp.join(args.out, split, name, f'{i:06d}.png'), img)
        print(f'  {split}: {num} images per class, {num * len(CLASSES)} in all -> {args.out}/{split}')
    print(f'  done in {time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
