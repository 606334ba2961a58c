#!/usr/bin/env python
"""Write a small, deterministic synthetic COCO instance-segmentation dataset.

Each image is a textured, noisy background with 1-4 filled shapes of four categories (circle,
rectangle, triangle, ring), random colours, sizes, positions and rotations. Later shapes are drawn
on top of earlier ones; every annotation describes the *visible* pixels only (segmentation as
uncompressed COCO RLE, bbox and area from the visible mask). A placement that would hide more than
half of an earlier shape, or leave fewer than ``MIN_VISIBLE`` of its pixels, is re-drawn, so every
painted object is annotated and no annotation is mostly hidden.

Layout::

    OUT/train/000000.png ...          OUT/annotations/instances_train.json
    OUT/val/000000.png ...            OUT/annotations/instances_val.json

Only numpy and the standard library are used (the PNG encoder is written here), so the output is
byte-identical on every run with the same arguments, whatever image library is installed.

Example::

    python tools/misc/make_demo_coco.py --out data/demo_coco --num-train 400 --num-val 50
"""
import argparse
import json
import os
import struct
import time
import zlib

import numpy as np

CATEGORIES = ('circle', 'rectangle', 'triangle', 'ring')
MIN_VISIBLE = 40  # pixels an annotated object keeps at least
MAX_HIDDEN = 0.5  # fraction of an earlier object a later one may cover at most
MIN_COLOUR_DIST = 100  # L1 distance (sum over RGB) between object and background colours


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default='data/demo_coco', help='output folder (default: data/demo_coco)')
    p.add_argument('--num-train', type=int, default=400, help='training images (default: 400)')
    p.add_argument('--num-val', type=int, default=50, help='validation images (default: 50)')
    p.add_argument('--img-size', type=int, default=128,
                   help='square image side in pixels (default: 128); --width/--height override it')
    p.add_argument('--width', type=int, default=None, help='image width (default: --img-size)')
    p.add_argument('--height', type=int, default=None, help='image height (default: --img-size)')
    p.add_argument('--max-objects', type=int, default=4, help='objects per image, at most (default: 4)')
    p.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    args = p.parse_args()
    args.width = args.width or args.img_size
    args.height = args.height or args.img_size
    if min(args.width, args.height) < 48:
        p.error('images must be at least 48x48')
    if args.num_train < 1 or args.num_val < 1 or args.max_objects < 1:
        p.error('--num-train, --num-val and --max-objects must be positive')
    return args


# --------------------------------------------------------------------------------------------
# PNG and RLE encoders
# --------------------------------------------------------------------------------------------
def write_png(path, img):
    """Write an (H, W, 3) uint8 array as an 8-bit RGB PNG (filter 0, zlib level 6)."""
    h, w, _ = img.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag, data):
        return (struct.pack('>I', len(data)) + tag + data
                + struct.pack('>I', zlib.crc32(tag + data) & 0xFFFFFFFF))

    png = (b'\x89PNG\r\n\x1a\n'
           + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
           + chunk(b'IDAT', zlib.compress(raw, 6))
           + chunk(b'IEND', b''))
    with open(path, 'wb') as f:
        f.write(png)


def mask_to_rle(mask):
    """Uncompressed COCO RLE of a boolean (H, W) mask: column-major runs, starting with zeros."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return dict(size=[int(mask.shape[0]), int(mask.shape[1])], counts=counts)


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------
def background(rng, h, w):
    """Low-frequency colour field plus stripes plus pixel noise, as float32 (H, W, 3)."""
    base = rng.uniform(70, 180, size=3)
    # bilinear upsampling of a coarse random grid gives smooth blotches
    grid = rng.uniform(-35, 35, size=(5, 5, 3))
    ys = np.linspace(0, 4, h)
    xs = np.linspace(0, 4, w)
    y0 = np.minimum(ys.astype(int), 3)
    x0 = np.minimum(xs.astype(int), 3)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    smooth = (g00 * (1 - fy) * (1 - fx) + g01 * (1 - fy) * fx + g10 * fy * (1 - fx) + g11 * fy * fx)
    yy, xx = np.mgrid[0:h, 0:w]
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(6, 20)
    stripes = rng.uniform(5, 15) * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
    img = base + smooth + stripes[..., None] + rng.normal(0, 8, size=(h, w, 3))
    return img.astype(np.float32), base


def shape_mask(rng, cat, h, w, yy, xx):
    """Full (unoccluded) boolean mask of one random shape of category ``cat``, inside the image."""
    short = min(h, w)
    size = rng.uniform(0.16, 0.42) * short  # rough diameter
    r = size / 2
    cy = rng.uniform(r, h - r)
    cx = rng.uniform(r, w - r)
    dy, dx = yy + 0.5 - cy, xx + 0.5 - cx
    if cat == 'circle':
        return dy**2 + dx**2 <= r**2
    if cat == 'ring':
        inner = r * rng.uniform(0.45, 0.65)
        d2 = dy**2 + dx**2
        return (d2 <= r**2) & (d2 >= inner**2)
    t = rng.uniform(0, np.pi)
    if cat == 'rectangle':
        # aspect in [0.5, 1]; half-sides chosen so that the rectangle fits in the circle of radius r
        aspect = rng.uniform(0.5, 1.0)
        hw = r / np.sqrt(1 + aspect**2)
        hh = hw * aspect
        u = dx * np.cos(t) + dy * np.sin(t)
        v = -dx * np.sin(t) + dy * np.cos(t)
        return (np.abs(u) <= hw) & (np.abs(v) <= hh)
    if cat == 'triangle':
        # vertices on the circle of radius r, angles jittered around an equilateral layout
        angles = t + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.35, 0.35, size=3)
        vx, vy = r * np.cos(angles), r * np.sin(angles)
        inside = np.ones((h, w), bool)
        for i in range(3):
            j = (i + 1) % 3
            cross = (vx[j] - vx[i]) * (dy - vy[i]) - (vy[j] - vy[i]) * (dx - vx[i])
            inside &= cross >= 0  # angles increase counter-clockwise in (x, y): inside is >= 0
        return inside
    raise ValueError(cat)


def object_colour(rng, bg_mean):
    for _ in range(100):
        c = rng.uniform(0, 255, size=3)
        if np.abs(c - bg_mean).sum() >= MIN_COLOUR_DIST:
            return c
    return 255 - bg_mean


def make_image(rng, h, w, max_objects):
    """One image and its objects: list of (category index, visible boolean mask)."""
    img, bg_mean = background(rng, h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    owner = np.full((h, w), -1, np.int32)  # index of the top-most object at each pixel
    full_areas, cats = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(30):
            cat = int(rng.integers(len(CATEGORIES)))
            mask = shape_mask(rng, CATEGORIES[cat], h, w, yy, xx)
            if mask.sum() < MIN_VISIBLE:
                continue
            new_owner = np.where(mask, len(cats), owner)
            visible = np.bincount(new_owner[new_owner >= 0], minlength=len(cats) + 1)[:len(cats)]
            if all(v >= MIN_VISIBLE and v >= (1 - MAX_HIDDEN) * a for v, a in zip(visible, full_areas)):
                break
        else:
            continue  # no valid placement found: skip this object
        owner = new_owner
        full_areas.append(int(mask.sum()))
        cats.append(cat)
        colour = object_colour(rng, bg_mean)
        # per-object shading: a linear gradient plus noise, so objects are not flat colour
        grad = rng.uniform(-0.4, 0.4, size=2)
        shade = (grad[0] * (yy - yy[mask].mean()) + grad[1] * (xx - xx[mask].mean()))[..., None]
        texture = colour + shade + rng.normal(0, 6, size=(h, w, 3))
        img[mask] = texture[mask]
    objects = [(cat, owner == i) for i, cat in enumerate(cats)]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), objects


def make_split(rng, out, split, num, h, w, max_objects):
    img_dir = os.path.join(out, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    per_cat = [0] * len(CATEGORIES)
    for img_id in range(1, num + 1):
        img, objects = make_image(rng, h, w, max_objects)
        file_name = f'{img_id - 1:06d}.png'
        write_png(os.path.join(img_dir, file_name), img)
        images.append(dict(id=img_id, file_name=file_name, width=w, height=h))
        for cat, mask in objects:
            ys, xs = np.nonzero(mask)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            annotations.append(dict(
                id=len(annotations) + 1, image_id=img_id, category_id=cat + 1,
                segmentation=mask_to_rle(mask), area=int(mask.sum()),
                bbox=[x0, y0, x1 - x0, y1 - y0], iscrowd=0))
            per_cat[cat] += 1
    coco = dict(
        info=dict(description=f'mmvit_hybrid synthetic shapes, {split} split', version='1.0',
                  year=2026, contributor='tools/misc/make_demo_coco.py', date_created=''),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(CATEGORIES)])
    ann_path = os.path.join(out, 'annotations', f'instances_{split}.json')
    with open(ann_path, 'w') as f:
        json.dump(coco, f, separators=(',', ':'))
    return len(images), len(annotations), per_cat


def main():
    args = parse_args()
    start = time.time()
    os.makedirs(os.path.join(args.out, 'annotations'), exist_ok=True)
    # independent streams per split: the val set does not change when --num-train does
    train_rng, val_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(2))
    print(f'make_demo_coco: {args.width}x{args.height} images, seed {args.seed}, '
          f'categories {", ".join(CATEGORIES)} -> {args.out}')
    for split, num, rng in (('train', args.num_train, train_rng), ('val', args.num_val, val_rng)):
        n_img, n_ann, per_cat = make_split(rng, args.out, split, num, args.height, args.width,
                                           args.max_objects)
        counts = ', '.join(f'{c} {n}' for c, n in zip(CATEGORIES, per_cat))
        print(f'  {split}: {n_img} images, {n_ann} objects ({counts}) '
              f'-> {args.out}/annotations/instances_{split}.json')
    print(f'  done in {time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
