import hashlib
import os

import pandas as pd
import pytest

from pipeline import PipelineError
from pipeline.data import catalog
from pipeline.data.catalog import class_names, find_images
from pipeline.files import write_csv
from tests.conftest import COLOURS, make_tree, write_image


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
    assert catalog.heldout_split(iter(["train", "validation"])) == "validation"  # a one-pass iterator
    assert catalog.heldout_split(["train", "validation", "test"]) == "test"
    assert catalog.heldout_split(["train"]) is None
    assert catalog.separate_validation_split(iter(["train", "validation", "test"])) == "validation"
    assert catalog.separate_validation_split(["train", "validation"]) is None


@pytest.mark.parametrize("label", ["NA", "None", "null", "nan", "NaN", "<NA>", "#NA", "1.0", " "])
def test_class_folders_named_like_missing_values_survive_the_manifest_csv(tmp_path, label):
    root = tmp_path / "images"
    for name in ("cats", label):
        write_image(root / "train" / name / "0.png", (200, 40, 40), 0)
    manifest, _ = find_images(root)
    write_csv(tmp_path / "manifest.csv", manifest.assign(sha256="0" * 64))
    again = catalog.read_manifest(tmp_path / "manifest.csv")
    assert again[["path", "split", "label"]].to_dict("list") == manifest.to_dict("list")
    assert sorted(again["label"]) == sorted(["cats", label])


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_printable_path(tmp_path):
    root = make_tree(tmp_path / "images", splits=("train",), per_class=2)
    write_image(root / "train/red" / os.fsdecode(b"caf\xe9.png"), COLOURS["red"], 0)
    with pytest.warns(UserWarning, match=r"caf\\xe9\.png"):
        manifest, skipped = find_images(root)
    assert skipped["path"].tolist() == ["train/red/caf\\xe9.png"]
    assert "rename" in skipped["reason"].iloc[0]
    assert len(manifest) == 4
    write_csv(tmp_path / "manifest.csv", manifest)  # what used to fail
    write_csv(tmp_path / "skipped.csv", skipped)


def test_linked_folders_are_followed_once_and_their_files_named_through_the_link(tmp_path):
    root = make_tree(tmp_path / "images", splits=("train",), per_class=1)
    write_image(tmp_path / "elsewhere/far.png", COLOURS["red"], 1)
    write_image(root / "train/red/nested/near.png", COLOURS["red"], 2)
    (root / "train/red/more").symlink_to(tmp_path / "elsewhere")
    (root / "train/red/linked.png").symlink_to(tmp_path / "elsewhere/far.png")
    (root / "train/red/nested/up").symlink_to("..")  # a loop back to the class folder
    manifest, skipped = find_images(root)
    assert sorted(manifest.loc[manifest["label"] == "red", "path"]) == [
        "train/red/0.png", "train/red/linked.png", "train/red/more/far.png", "train/red/nested/near.png",
    ]
    assert skipped.empty


def test_a_broken_link_is_named_not_silently_missing(tmp_path):
    root = make_tree(tmp_path / "images", splits=("train",), per_class=1)
    (root / "train/red/gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.warns(UserWarning, match="skipping"):
        _, skipped = find_images(root)
    assert skipped["path"].tolist() == ["train/red/gone.png"]
    assert "No such file" in skipped["reason"].iloc[0]


def manifest_of(train_counts):
    """A manifest with `train_counts` training images per class (and one test image each)."""
    rows = [(f"train/{label}/{n}.png", "train", label) for label, count in train_counts.items() for n in range(count)]
    rows += [(f"test/{label}/0.png", "test", label) for label in train_counts]
    return pd.DataFrame(rows, columns=["path", "split", "label"])


def test_enough_training_images_per_class_for_the_folds_pass():
    catalog.check_classes(manifest_of({"cats": 5, "dogs": 7}), folds=5)


@pytest.mark.parametrize("counts, folds, message", [
    ({"cats": 5, "dogs": 5}, 1, r"^evaluate\.folds is 1: cross-validation needs at least 2 folds; set evaluate"),
    ({"cats": 9}, 5, r"^only one class \(cats\) under data\.dir: .* at least two class folders$"),
    ({"cats": 9, "x": 3}, 5, r"^class 'x' has only 3 training images but evaluate\.folds is 5: add images or lower"),
    ({"cats": 9, "x": 3, "y": 0}, 5, r"^class 'x' has only 3, class 'y' has only 0 training images"),
])
def test_too_few_classes_images_or_folds_say_what_to_change(counts, folds, message):
    with pytest.raises(PipelineError, match=message) as raised:
        catalog.check_classes(manifest_of(counts), folds)
    assert "\n" not in str(raised.value)
