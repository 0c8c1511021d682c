import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline import paths
from pipeline.features import store


def chunks(rows, size):
    for start in range(0, len(rows), size):
        yield {"features": rows[start:start + size], "features_flipped": -rows[start:start + size]}


def test_a_split_is_written_with_everything_needed_to_reuse_it(tmp_path):
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    out = tmp_path / "features" / "train.h5"
    store.write(out, chunks(rows, 4), labels=[0, 0, 0, 1, 1, 1], rel_paths=list("abcdef"),
                classes=["blue", "red"], meta={"input_size": 32, "weights_sha256": "f00"},
                started=time.perf_counter())
    read = store.read(out)
    np.testing.assert_array_equal(read.X, rows)
    np.testing.assert_array_equal(read.flipped, -rows)
    assert read.y.tolist() == [0, 0, 0, 1, 1, 1] and read.classes == ["blue", "red"]
    assert read.paths == list("abcdef") and read.augmented is None
    assert read.meta["weights_sha256"] == "f00" and read.meta["seconds"] >= 0
    assert store.read_meta(out)["images"] == 6
    assert read.views().shape == (6, 1, 2)


def test_the_mirror_sample_is_stored_beside_the_split_and_read_back_with_its_images(tmp_path):
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    out = tmp_path / "features" / "train.h5"
    sample = {store.SAMPLE_ROWS: np.array([1, 4]), "features_flipped_sample": -rows[[1, 4]]}
    store.write(out, ({"features": rows},), labels=[0, 0, 0, 1, 1, 1], rel_paths=list("abcdef"), classes=["a", "b"],
                meta={}, started=time.perf_counter(), extra=sample)
    images, mirrored, labels = store.mirror_sample(out)
    np.testing.assert_array_equal(images, rows[[1, 4]])
    np.testing.assert_array_equal(mirrored, -rows[[1, 4]])
    assert labels.tolist() == [0, 1]
    assert store.read(out).flipped is None  # not mirror images of every image
    bare = tmp_path / "test.h5"
    store.write(bare, ({"features": rows},), [0] * 6, list("abcdef"), ["a"], {}, time.perf_counter())
    assert store.mirror_sample(bare) is None


def test_the_mirror_sample_is_the_smallest_hashes_so_added_images_change_it_little():
    keys = [f"{n:03x}" for n in range(0, 600, 2)]  # 300 contents, in no order
    keys = keys[::-1]
    rows = store.mirror_sample_rows(keys, size=100)
    assert sorted(keys[row] for row in rows) == sorted(keys)[:100] and list(rows) == sorted(rows)
    more = keys + [f"{n:03x}" for n in range(1, 600, 20)]  # 30 added contents: 9 join the 100 smallest
    kept = {keys[row] for row in rows} & {more[row] for row in store.mirror_sample_rows(more, size=100)}
    assert len(kept) == 91  # so 9 mirror images to extract, not 100
    assert len(store.mirror_sample_rows(["a", "a", "b"], size=5)) == 2  # a content twice is mirrored once


def test_views_put_each_image_before_its_augmented_copies():
    split = store.Features(X=np.zeros((3, 2)), y=np.zeros(3), paths=[], classes=[], meta={},
                           augmented=np.ones((3, 2, 2)))
    views = split.views()
    assert views.shape == (3, 3, 2) and (views[:, 0] == 0).all() and (views[:, 1:] == 1).all()
    # the split's rows are then held once: its image and copy rows are those of the views
    assert np.shares_memory(split.X, views) and np.shares_memory(split.augmented, views)
    np.testing.assert_array_equal(split.views(), views)


def test_an_interrupted_write_leaves_no_file(tmp_path):
    def failing():
        yield {"features": np.zeros((2, 2), np.float32)}
        raise KeyboardInterrupt

    out = tmp_path / "features" / "train.h5"
    with pytest.raises(KeyboardInterrupt):
        store.write(out, failing(), [0] * 4, list("abcd"), ["a"], {}, time.perf_counter())
    assert list(out.parent.iterdir()) == []


def test_reading_a_broken_file_says_what_to_run(tmp_path):
    bad = tmp_path / "train.h5"
    with h5py.File(bad, "w") as h5:
        h5["features"] = np.zeros((1, 2))
    with pytest.raises(Exception, match="dvc repro features"):
        store.read(bad)


def test_the_heldout_file_is_test_else_validation_else_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths.FEATURES.mkdir()
    paths.features_file("train").touch()
    assert store.heldout_file() is None
    paths.features_file("validation").touch()
    assert store.heldout_file() == Path("features/validation.h5")
    paths.features_file("test").touch()
    assert store.heldout_file() == Path("features/test.h5")
