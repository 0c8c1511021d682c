import hashlib
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from pipeline.data import augment, augment_layers

OFF = {"rotation": 0, "width_shift": 0, "height_shift": 0, "shear": 0, "zoom": 0, "horizontal_flip": False}
ON = {"rotation": 0.1, "width_shift": 0.2, "height_shift": 0.2, "shear": 0.2, "zoom": 0.2, "horizontal_flip": True}


def images(n=3, size=24):
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def keys(batch):
    return [hashlib.sha256(image.tobytes()).hexdigest() for image in batch]


def test_copies_depend_on_the_seed_and_each_image_not_on_its_batch():
    batch = images(n=4)
    first = augment.Copies(ON, count=3, seed=7)(batch, keys(batch))
    assert first.shape == (4, 3, 24, 24, 3)
    assert not np.allclose(first[:, 0], augment.mirror(batch))  # transformed, not only mirrored
    # Smaller batches in another order give each image the same copies; more copies add to them.
    copies = augment.Copies(ON, count=3, seed=7)
    swapped = np.concatenate([copies(batch[2:][::-1], keys(batch[2:][::-1])), copies(batch[:2], keys(batch[:2]))])
    np.testing.assert_allclose(swapped, first[[3, 2, 0, 1]], atol=1e-3)
    np.testing.assert_allclose(augment.Copies(ON, count=5, seed=7)(batch, keys(batch))[:, :3], first, atol=1e-3)
    assert not np.allclose(augment.Copies(ON, count=3, seed=8)(batch, keys(batch)), first, atol=1)
    # The key, not the place in the batch, decides: the same image under another key gets other copies.
    twice = augment.Copies(ON, count=3, seed=7)(batch[[0, 0]], [keys(batch)[0], keys(batch)[1]])
    np.testing.assert_allclose(twice[0], first[0], atol=1e-3)
    assert not np.allclose(twice[1], first[0], atol=1)


def test_with_only_the_flip_every_other_copy_is_the_mirror_image():
    batch = images()
    flip_only = augment.Copies({**OFF, "horizontal_flip": True}, count=3, seed=0)(batch, keys(batch))
    np.testing.assert_array_equal(flip_only[:, 0], batch[:, :, ::-1])
    np.testing.assert_array_equal(flip_only[:, 1], batch)
    np.testing.assert_array_equal(flip_only[:, 2], batch[:, :, ::-1])


@pytest.mark.parametrize("setting", augment.GEOMETRIC)
def test_each_transform_changes_the_copies_and_zero_switches_it_off(setting):
    batch = images()
    changed = augment.Copies({**OFF, setting: 0.2}, count=2, seed=0)(batch, keys(batch))
    assert np.abs(changed - batch[:, None]).mean(axis=(2, 3, 4)).min() > 5  # every copy, on 0-255 noise
    np.testing.assert_array_equal(augment.Copies(OFF, count=2, seed=0)(batch, keys(batch)), batch[:, None].repeat(2, 1))


def test_rotation_counts_full_turns_and_shifts_fractions_of_the_size():
    image = images(n=1, size=40)
    quarter_turn = augment.sampling_maps([[0.25, 0, 0, 0, 0]], 40, 40)
    turned = np.asarray(keras.ops.image.affine_transform(image, quarter_turn))[0]
    assert any(np.allclose(turned, np.rot90(image[0], k), atol=1e-2) for k in (1, -1))
    quarter_width = augment.sampling_maps([[0, 0.25, 0, 0, 0]], 40, 40)
    shifted = np.asarray(keras.ops.image.affine_transform(image, quarter_width))[0]
    assert (np.allclose(shifted[:, :30], image[0, :, 10:], atol=1e-2)
            or np.allclose(shifted[:, 10:], image[0, :, :30], atol=1e-2))


@pytest.mark.parametrize("setting", sorted(OFF))
def test_each_setting_switches_one_layer(setting):
    value = True if setting == "horizontal_flip" else 0.1
    assert len(augment_layers.model_layers({**OFF, setting: value}, seed=0)) == 1
    assert augment_layers.model_layers(OFF, seed=0) == []


def test_all_geometric_transforms_are_one_warp_that_acts_only_while_training():
    layers = augment_layers.model_layers(ON, seed=0)
    assert [type(layer) for layer in layers] == [augment_layers.RandomAffine, keras.layers.RandomFlip]
    warp, batch = layers[0], images(n=4)
    np.testing.assert_array_equal(np.asarray(warp(batch, training=False)), batch)
    first, second = (np.asarray(warp(batch, training=True)) for _ in range(2))
    assert first.shape == batch.shape
    # Every image moves, and each call (each epoch) draws new transforms.
    assert np.abs(first - batch).mean(axis=(1, 2, 3)).min() > 5 and np.abs(first - second).mean() > 5
    # The borders repeat the image's edge, so a flat image stays flat wherever it moves.
    flat = np.full((2, 24, 24, 3), 90, np.float32)
    np.testing.assert_allclose(np.asarray(warp(flat, training=True)), flat, atol=1e-3)


def test_the_warp_draws_each_value_within_its_setting():
    # Only a width shift of up to 0.25: every row of the output is the image's row moved by at most 6 of 24 pixels.
    ramp = np.tile(np.arange(24, dtype=np.float32), (8, 24, 1))[..., None].repeat(3, axis=-1)
    moved = np.asarray(augment_layers.RandomAffine([0, 0.25, 0, 0, 0], seed=1)(ramp, training=True))
    offsets = moved[:, 12, 12, 0] - ramp[:, 12, 12, 0]
    assert np.abs(offsets).max() <= 6 + 1e-3 and np.unique(np.round(offsets)).size > 2
    np.testing.assert_allclose(moved[:, :, :, 0], moved[:, :1, :, 0].repeat(24, axis=1))  # rows move together


@pytest.mark.parametrize("size, factors", [((24, 24), [0.1, 0.2, 0.2, 0.2, 0.2]),
                                           ((20, 32), [0.5, 0.6, 0.6, 0.5, 0.9])])
def test_the_copies_warp_is_kerass_to_the_bit(size, factors):
    # The cached copies made before the NumPy warp stay valid only if it is Keras's (the scratch CNN's) exactly,
    # out past the borders too (large shifts and zoom).
    batch = np.round(np.random.default_rng(1).uniform(0, 255, (32, *size, 3))).astype(np.float32)
    maps = augment.sampling_maps(np.random.default_rng(2).uniform(-1, 1, (32, 5)) * factors, *size)
    ours = augment.affine_transform(batch, maps)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, np.asarray(keras.ops.image.affine_transform(
        batch, maps, interpolation="bilinear", fill_mode=augment.FILL)))


def test_making_copies_loads_no_tensorflow():
    code = ("import sys, numpy as np; from pipeline.data import augment; "
            "augment.Copies({'rotation': 0.1, 'width_shift': 0.1, 'height_shift': 0.1, 'shear': 0.1, 'zoom': 0.1, "
            "'horizontal_flip': True}, 2, 0)(np.zeros((1, 8, 8, 3), np.float32), ['ab' * 32]); "
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])  # the project's root, where `pipeline` is
    assert done.stdout == "False\n"
