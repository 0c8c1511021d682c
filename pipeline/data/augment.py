"""Random image augmentation from params.yaml's `augment` section.

The scratch CNN gets Keras random layers (pipeline.data.augment_layers: new transforms every epoch,
active only while training). The augmented copies that go through the backbone into the feature cache
are drawn per image instead, from `augment.seed` and the image's content, so that the batch size, the
order of the images and their file names never change a cached feature. Neither importing this module nor
making copies loads TensorFlow (about 6 s): the features stage and the report need them without it.
"""
import numpy as np

FILL = "nearest"  # what the classic tutorial's ImageDataGenerator used at the borders
# The settings that scale a copy's random draws, in the order they are drawn.
GEOMETRIC = ("rotation", "width_shift", "height_shift", "shear", "zoom")


def mirror(images):
    """Left-right mirror of images (..., height, width, channels)."""
    return images[..., ::-1, :]


def sampling_maps(draws, height, width, ops=np):
    """Where each output pixel is read from in the image: affine_transform's 8 numbers per copy.

    `draws` holds one row per copy of GEOMETRIC values, with the meanings of Keras's random
    layers: rotation in full turns, shifts in fractions of the width and height, a shear
    coefficient, and zoom (each output pixel is read from 1 + zoom times as far from the centre,
    so above 0 zooms out). All act about the image centre. `ops` is numpy (float64 arithmetic, float32
    maps, for the cached copies) or keras.ops (tensors, inside RandomAffine).
    """
    if ops is np:
        draws = np.asarray(draws, dtype=np.float64)
    rotation, width_shift, height_shift, shear, zoom = (draws[:, column] for column in range(len(GEOMETRIC)))
    cos, sin = ops.cos(2 * np.pi * rotation), ops.sin(2 * np.pi * rotation)
    scale = 1 + zoom
    # rotation @ [[1, shear], [0, 1]] @ scale: one matrix, so each pixel is interpolated once
    a0, a1 = scale * cos, scale * (cos * shear - sin)
    b0, b1 = scale * sin, scale * (sin * shear + cos)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a2 = cx - a0 * cx - a1 * cy + width_shift * width
    b2 = cy - b0 * cx - b1 * cy + height_shift * height
    zeros = ops.zeros_like(a0)
    maps = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return maps.astype(np.float32) if ops is np else maps


def affine_transform(images, maps):
    """(n, h, w, c) float32 images, each read where its row of sampling_maps points: bilinear, borders repeated.

    Keras's affine_transform (TensorFlow's ImageProjectiveTransformV3, bilinear, fill_mode FILL) in NumPy, equal to
    the bit (tests/test_augment.py), so the cached copies are the same whichever made them. Its float32 arithmetic
    follows TensorFlow's in order: a coordinate clamped to the image, its floor, weights from floor + 1 - coordinate.
    """
    n, height, width = images.shape[:3]
    rows, columns = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    a0, a1, a2, b0, b1, b2 = (maps[:, i, None, None] for i in range(6))
    x = np.clip(a0 * columns + a1 * rows + a2, np.float32(0), np.float32(width - 1))
    y = np.clip(b0 * columns + b1 * rows + b2, np.float32(0), np.float32(height - 1))
    x0, y0 = np.floor(x), np.floor(y)
    left, top = x0.astype(np.intp), y0.astype(np.intp)
    # Past the last pixel TensorFlow reads the fill value 0 at weight 0; the edge pixel at weight 0 adds the same 0.
    right, bottom = np.minimum(left + 1, width - 1), np.minimum(top + 1, height - 1)
    pixels = images.reshape(-1, images.shape[-1])
    first = (np.arange(n) * (height * width))[:, None, None]  # each image's first pixel among all of them

    def at(row, column):
        return pixels.take(first + row * width + column, axis=0)  # one flat index: faster than three

    wx0, wx1, wy0, wy1 = (weight[..., None] for weight in (x - x0, x0 + 1 - x, y - y0, y0 + 1 - y))
    upper = wx1 * at(top, left) + wx0 * at(top, right)
    lower = wx1 * at(bottom, left) + wx0 * at(bottom, right)
    return wy1 * upper + wy0 * lower


class Copies:
    """Makes `count` augmented copies of each image, each decided by the seed, the image's key and its index.

    A key is the hex sha256 of the image file, so a renamed or moved image gets the same copies,
    and neither the batch an image comes in nor its place there changes them. With
    horizontal_flip on, every other copy is mirrored (the first one is), rather than each by a
    coin toss, so one copy is always the mirror image however few there are.
    """

    def __init__(self, settings, count, seed):
        self.count = count
        self.seed = seed
        self.flip = settings["horizontal_flip"]
        self.factors = np.array([settings[name] for name in GEOMETRIC], dtype=np.float64)

    def __call__(self, images, keys):
        """(n, h, w, c) images and their n keys -> (n, count, h, w, c) copies."""
        copies = np.repeat(images[:, None], self.count, axis=1)
        if self.factors.any():
            draws = np.concatenate([self.draws(key) for key in keys])
            moved = affine_transform(copies.reshape(-1, *images.shape[1:]), sampling_maps(draws, *images.shape[1:3]))
            copies = moved.reshape(copies.shape)
        if self.flip:
            copies[:, ::2] = mirror(copies[:, ::2])
        return copies

    def draws(self, key):
        """(count, GEOMETRIC) transform values of one image's copies: each uniform within ± its setting.

        Copy i's row depends only on the seed, the key and i (a larger count adds rows at the end).
        """
        generator = np.random.default_rng([self.seed, int(key[:16], 16)])
        return generator.uniform(-1, 1, (self.count, len(GEOMETRIC))) * self.factors
