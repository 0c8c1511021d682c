import hashlib

import pytest

from pipeline import PipelineError, data
from pipeline.data import class_names, find_images
from tests.conftest import make_tree, write_image


def digest(root):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_split_folders_are_read_as_splits_and_val_means_validation(tmp_path):
    root = make_tree(tmp_path / "images", splits=("train", "val", "test"), per_class=2)
    manifest, skipped = find_images(root)
    assert manifest.groupby("split").size().to_dict() == {"test": 4, "train": 4, "validation": 4}
    assert class_names(manifest) == ["blue", "red"]
    assert manifest["path"].iloc[0] == "test/blue/0.png"  # relative to the data folder
    assert skipped.empty


def test_unsplit_folders_are_split_stratified_and_reproducibly(tmp_path):
    root = make_tree(tmp_path / "images", splits=(None,), per_class=10)
    manifest, _ = find_images(root, validation=0.2, test=0.2, seed=1)
    counts = manifest.groupby(["split", "label"]).size()
    assert counts.to_dict() == {(s, c): n for s, n in (("test", 2), ("train", 6), ("validation", 2))
                                for c in ("blue", "red")}
    again, _ = find_images(root, validation=0.2, test=0.2, seed=1)
    other, _ = find_images(root, validation=0.2, test=0.2, seed=2)
    assert again.equals(manifest)
    assert not other.equals(manifest)


def test_unreadable_files_are_skipped_and_named_not_fatal(tmp_path):
    root = make_tree(tmp_path / "images", splits=("train",), per_class=3)
    good = (root / "train/red/0.png").read_bytes()
    (root / "train/red/broken.jpg").write_bytes(good[: len(good) // 3])
    (root / "train/blue/notes.txt").write_text("not an image")
    before = digest(root)
    with pytest.warns(UserWarning, match="skipping"):
        manifest, skipped = find_images(root)
    assert sorted(skipped["path"]) == ["train/blue/notes.txt", "train/red/broken.jpg"]
    assert len(manifest) == 6
    assert digest(root) == before  # the user's files are never modified


def test_classes_that_differ_between_splits_are_named(tmp_path):
    root = make_tree(tmp_path / "images", splits=("train",), per_class=1)
    write_image(root / "test/red/0.png", (200, 0, 0), 0)
    write_image(root / "test/green/0.png", (0, 200, 0), 0)
    with pytest.raises(PipelineError, match=r"missing blue; not in train: green"):
        find_images(root)


def test_a_missing_folder_says_what_to_set(tmp_path):
    with pytest.raises(PipelineError, match=r"data folder .*nowhere not found: set data\.dir"):
        find_images(tmp_path / "nowhere")


def test_an_empty_folder_says_what_layout_is_expected(tmp_path):
    with pytest.raises(PipelineError, match=r"no images in .*<class>/<image>"):
        find_images(tmp_path)


def test_val_and_validation_together_are_ambiguous(tmp_path):
    root = make_tree(tmp_path / "images", splits=("train", "val", "validation"), per_class=1)
    with pytest.raises(PipelineError, match="keep one of them"):
        find_images(root)


def test_the_reported_split_is_test_else_validation_and_early_stopping_uses_the_other():
    assert data.heldout_split(iter(["train", "validation"])) == "validation"  # a one-pass iterator
    assert data.heldout_split(["train", "validation", "test"]) == "test"
    assert data.heldout_split(["train"]) is None
    assert data.stopping_split(iter(["train", "validation", "test"])) == "validation"
    assert data.stopping_split(["train", "validation"]) is None
