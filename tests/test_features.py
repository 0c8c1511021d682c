import h5py
import numpy as np
import pytest

from pipeline import backbone, features
from tests.conftest import make_tree

SETTINGS = {"input_size": 32, "pooling": "avg"}


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
    whole = np.concatenate(list(features.iter_batches(model, files, 32, batch_size=6)))
    np.testing.assert_allclose(read.X, whole, rtol=1e-4, atol=1e-4)


def test_extraction_streams_in_batches(tmp_path, model):
    files = sorted(make_tree(tmp_path / "images", per_class=5).rglob("*.png"))
    sizes = [len(b) for b in features.iter_batches(model, files, 32, batch_size=4)]
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
