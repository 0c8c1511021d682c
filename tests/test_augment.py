import numpy as np
import pytest

from pipeline import augment

OFF = {"rotation": 0, "width_shift": 0, "height_shift": 0, "shear": 0, "zoom": 0, "horizontal_flip": False}
ON = {"rotation": 0.1, "width_shift": 0.2, "height_shift": 0.2, "shear": 0.2, "zoom": 0.2, "horizontal_flip": True}


def images(n=3, size=24):
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def test_copies_are_random_reproducible_and_every_other_one_mirrored():
    batch = images()
    first = augment.Copies(ON, count=3, seed=7)(batch)
    again = augment.Copies(ON, count=3, seed=7)(batch)
    assert first.shape == (3, 3, 24, 24, 3)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[:, 0], augment.mirror(batch))  # transformed, not only mirrored
    flip_only = augment.Copies({**OFF, "horizontal_flip": True}, count=2, seed=0)(batch)
    np.testing.assert_array_equal(flip_only[:, 0], batch[:, :, ::-1])
    np.testing.assert_array_equal(flip_only[:, 1], batch)


@pytest.mark.parametrize("setting", sorted(OFF))
def test_each_setting_switches_one_layer(setting):
    value = True if setting == "horizontal_flip" else 0.1
    assert len(augment.model_layers({**OFF, setting: value}, seed=0)) == 1
    assert augment.model_layers(OFF, seed=0) == []
