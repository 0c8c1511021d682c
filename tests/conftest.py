"""Shared fixtures: small generated image folders, random VGG16 weights, and the real data.

The real ImageNet weights and datasets are reached through settings that .ci/run fills in:
VGG16_IMAGENET_WEIGHTS (a VGG16 notop .h5; DENSENET121_ and MOBILENETV2_IMAGENET_WEIGHTS the same for those
backbones) and PIPELINE_TEST_DATASETS (a folder of datasets).
Without them the tests that need them skip, except under CI, where they fail.
"""
import os
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from pipeline.features.backbone import WEIGHTS_ENV

COLOURS = {"red": (200, 40, 40), "blue": (40, 40, 200)}


def write_image(path, colour, seed, size=40, fmt=None):
    """A noisy image of one dominant colour: two such classes are easy to tell apart."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def make_tree(root, splits=("train",), per_class=6, classes=tuple(COLOURS)):
    """root/<split>/<class>/<n>.png, or root/<class>/<n>.png when splits is (None,)."""
    seed = 0
    for split in splits:
        for name in classes:
            for n in range(per_class):
                folder = root / split / name if split else root / name
                write_image(folder / f"{n}.png", COLOURS[name], seed)
                seed += 1
    return root


@pytest.fixture
def image_tree(tmp_path):
    return make_tree(tmp_path / "images", splits=("train", "test"))


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """A VGG16 conv-base weights file with random values: a real file, no download."""
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("weights") / "vgg16_random.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None).save_weights(path)
    return path


def shared_setting(name):
    value = os.environ.get(name)
    if value and Path(value).exists():
        return Path(value)
    message = f"set {name} to run this test (see .ci/run)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def imagenet_weights():
    return shared_setting(WEIGHTS_ENV)


@pytest.fixture
def shared_datasets():
    return shared_setting("PIPELINE_TEST_DATASETS")


@pytest.fixture
def class_weights_seen(monkeypatch):
    """The class_weight that each call of networks.train was given, as the code under test calls it."""
    from pipeline.modeling import networks

    seen = {}
    real_train = networks.train

    def recording_train(*args, class_weight=None, **kwargs):
        seen["class_weight"] = class_weight
        return real_train(*args, class_weight=class_weight, **kwargs)

    monkeypatch.setattr(networks, "train", recording_train)
    return seen
