import hashlib
import shutil

import h5py
import numpy as np
import pytest

from pipeline import augment, backbone, features
from tests.conftest import make_tree

SETTINGS = {"input_size": 32, "pooling": "avg"}
FLIP_ONLY = {"rotation": 0, "width_shift": 0, "height_shift": 0, "shear": 0, "zoom": 0, "horizontal_flip": True}
AUGMENT = {**FLIP_ONLY, "rotation": 0.05, "width_shift": 0.1, "height_shift": 0.1, "shear": 0.1, "zoom": 0.1}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def model(random_weights):
    return backbone.build(str(random_weights), **SETTINGS)


def test_a_split_is_written_with_everything_needed_to_reuse_it(tmp_path, model, random_weights):
    files = sorted(make_tree(tmp_path / "images", per_class=3).rglob("*.png"))
    meta = features.describe(model, {"weights": str(random_weights), **SETTINGS})
    out = tmp_path / "features" / "train.h5"
    labels = [0, 0, 0, 1, 1, 1]
    features.write_split(out, model, files, labels, [f.name for f in files], ["blue", "red"],
                         {**meta, "split": "train"}, batch_size=4)
    read = features.read(out)
    assert read.X.shape == (6, 512) and read.X.dtype == np.float32
    assert read.y.tolist() == labels and read.classes == ["blue", "red"]
    assert read.paths == [f.name for f in files]
    assert read.meta["weights_sha256"] == backbone.weights_digest(model)
    assert read.meta["preprocessing"].startswith("keras.applications.vgg16.preprocess_input")
    # Batches give the same numbers as one pass over all images.
    whole = next(features.iter_batches(model, files, 32, batch_size=6))["features"]
    np.testing.assert_allclose(read.X, whole, rtol=1e-4, atol=1e-4)
    assert read.augmented is None and read.flipped is None and read.views().shape == (6, 1, 512)


def test_copies_and_mirror_images_are_stored_beside_each_image(tmp_path, random_weights):
    files = sorted(make_tree(tmp_path / "images", per_class=2).rglob("*.png"))
    base = backbone.conv_base(str(random_weights), 32)
    model = backbone.extractor(base, "avg")
    copies = augment.Copies(FLIP_ONLY, count=2, seed=0)
    out = tmp_path / "train.h5"
    features.write_split(out, model, files, [0, 0, 1, 1], ["p"] * 4, ["a", "b"],
                         {"input_size": 32, "split": "train"}, batch_size=3, copies=copies,
                         keys=[sha256(f) for f in files], mirrored=True)
    read, block4 = features.read(out), features.read(out, backbone.BLOCK4)
    assert read.augmented.shape == (4, 2, 512) and read.flipped.shape == (4, 512)
    assert block4.X.shape == (4, 2, 2, 512) and block4.augmented.shape == (4, 2, 2, 2, 512)
    # With only the flip switched on, copy 0 is the mirror image and copy 1 the image itself.
    np.testing.assert_allclose(read.augmented[:, 0], read.flipped, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(read.augmented[:, 1], read.X, rtol=1e-4, atol=1e-4)
    assert read.views().shape == (4, 3, 512)


def test_augmented_copies_depend_on_the_seed_and_each_image_not_on_batches_order_or_names(tmp_path, model):
    files = sorted(make_tree(tmp_path / "images", per_class=3).rglob("*.png"))

    def augmented(files, batch_size, seed=0):
        out = tmp_path / "features" / f"{len(files)}_{batch_size}_{seed}.h5"
        features.write_split(out, model, files, [0] * len(files), [f.name for f in files], ["a"],
                             {"input_size": 32, "split": "train"}, batch_size,
                             copies=augment.Copies(AUGMENT, count=2, seed=seed), keys=[sha256(f) for f in files])
        return features.read(out).augmented

    by_four = augmented(files, batch_size=4)
    np.testing.assert_allclose(augmented(files[::-1], batch_size=2)[::-1], by_four, rtol=1e-4, atol=1e-4)
    renamed = shutil.copy(files[0], tmp_path / "elsewhere.png")
    np.testing.assert_allclose(augmented([renamed], batch_size=1)[0], by_four[0], rtol=1e-4, atol=1e-4)
    assert not np.allclose(augmented(files, batch_size=4, seed=1), by_four, rtol=1e-4, atol=1e-4)


def test_extraction_streams_in_batches(tmp_path, model):
    files = sorted(make_tree(tmp_path / "images", per_class=5).rglob("*.png"))
    sizes = [len(b["features"]) for b in features.iter_batches(model, files, 32, batch_size=4)]
    assert sizes == [4, 4, 2]


def test_an_interrupted_extraction_leaves_no_file(tmp_path, model):
    files = sorted(make_tree(tmp_path / "images", per_class=3).rglob("*.png"))
    files[4].unlink()  # vanishes mid-run
    out = tmp_path / "features" / "train.h5"
    with pytest.raises(FileNotFoundError):
        features.write_split(out, model, files, [0] * 6, ["x"] * 6, ["a"], SETTINGS, batch_size=2)
    assert list(out.parent.iterdir()) == []


def test_reading_a_broken_file_says_what_to_run(tmp_path):
    bad = tmp_path / "train.h5"
    with h5py.File(bad, "w") as h5:
        h5["features"] = np.zeros((1, 2))
    with pytest.raises(Exception, match="dvc repro features"):
        features.read(bad)
