"""The size images are resized to: backbone.input_size, or for `auto` one chosen from the images' own size.

ImageNet networks were trained at 224 px, but 150 px runs much faster and scored as well in CV on
photos of about 200 px; photos much larger than that lose detail at 150 px, and scored better at 224
(benchmarks/results.md, figures behind the code). `auto` therefore takes 150 px unless that is below
half the images' median shorter side, and then 224.
"""
import numpy as np
from PIL import Image

AUTO = "auto"
SMALL, LARGE = 150, 224
SIZE_RATIO = 0.5  # below half the images' median shorter side, resizing throws away most of their detail
SAMPLE = 200  # images looked at: enough for a median, and quick (headers only)


def sample(items, size=SAMPLE, seed=0):
    """Up to `size` of `items`, the same ones on every run."""
    if len(items) <= size:
        return list(items)
    return [items[i] for i in sorted(np.random.default_rng(seed).choice(len(items), size, replace=False))]


def median_shorter_side(files):
    """The median over the files of min(width, height), from their headers (nothing is decoded)."""
    sides = []
    for path in files:
        with Image.open(path) as image:
            sides.append(min(image.size))
    return float(np.median(sides))


def resolve(setting, files):
    """Pixels per side: `setting` itself, or for 'auto' the size for `files` (the training images)."""
    if setting != AUTO:
        return setting
    return LARGE if SMALL < SIZE_RATIO * median_shorter_side(sample(files)) else SMALL
