import hashlib
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import PipelineError
from pipeline.data import catalog, duplicates
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


def unsplit_manifest(root, validation=0.0, test=0.2, seed=42, max_distance=0):
    """The manifest prepare makes of an unsplit folder: found, hashed, and split by content."""
    manifest, _ = find_images(root)
    manifest["sha256"] = [duplicates.content_hash(root / path) for path in manifest["path"]]
    copies = duplicates.find_duplicates(root, manifest, max_distance)
    return manifest.assign(split=catalog.content_split(manifest, copies, validation, test, seed))


def noise_images(folder, count, start=0):
    """`count` PNGs of random noise (no two alike), named from `start` on."""
    rng = np.random.default_rng(start)
    for n in range(start, start + count):
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{n}.png")


def test_an_unsplit_folder_is_left_unsplit_until_its_images_are_hashed(tmp_path):
    root = make_tree(tmp_path / "images", splits=(None,), per_class=3)
    manifest, skipped = find_images(root)
    assert manifest["split"].isna().all() and len(manifest) == 6 and skipped.empty


def test_adding_40_images_to_400_moves_none_of_them_and_the_split_is_near_the_fractions(tmp_path):
    root = tmp_path / "images"
    for n, label in enumerate(("cats", "dogs")):
        noise_images(root / label, 200, start=1000 * n)
    before = unsplit_manifest(root, validation=0.1, test=0.2, seed=7)
    for n, label in enumerate(("cats", "dogs")):
        noise_images(root / label, 20, start=1000 * n + 200)
    after = unsplit_manifest(root, validation=0.1, test=0.2, seed=7)
    assert len(before) == 400 and len(after) == 440
    kept = after.set_index("path").loc[before["path"], "split"]
    assert (kept.to_numpy() == before["split"].to_numpy()).all()  # no earlier image changed split
    counts = after.groupby(["label", "split"]).size().unstack()
    for split, fraction in {"test": 0.2, "validation": 0.1, "train": 0.7}.items():
        spread = np.sqrt(220 * fraction * (1 - fraction))  # binomial: each image falls on its own
        assert (abs(counts[split] - 220 * fraction) <= 3 * spread).all()
    assert not unsplit_manifest(root, validation=0.1, test=0.2, seed=8)["split"].equals(after["split"])


def test_renaming_or_removing_images_moves_no_other_image(tmp_path):
    root = tmp_path / "images"
    noise_images(root / "cats", 30)
    noise_images(root / "dogs", 30, start=100)
    before = unsplit_manifest(root).set_index("path")["split"]
    (root / "cats/0.png").rename(root / "cats/renamed.png")
    for n in range(1, 10):
        (root / f"dogs/{100 + n}.png").unlink()
    after = unsplit_manifest(root).set_index("path")["split"]
    assert after["cats/renamed.png"] == before["cats/0.png"]
    assert after.drop("cats/renamed.png").equals(before.loc[after.index.drop("cats/renamed.png")])


def test_raising_the_test_fraction_only_moves_training_images_into_test(tmp_path):
    root = tmp_path / "images"
    noise_images(root / "cats", 50)
    noise_images(root / "dogs", 50, start=100)
    low, high = (unsplit_manifest(root, validation=0.1, test=test)["split"] for test in (0.1, 0.3))
    moved = low != high
    assert moved.any() and (low[moved] == "train").all() and (high[moved] == "test").all()


def test_copies_of_one_image_land_on_one_side_of_the_split(tmp_path):
    root = tmp_path / "images"
    noise_images(root / "cats", 40)
    noise_images(root / "dogs", 40, start=100)
    for n in range(40):  # a re-encoded copy of each cat, and a byte copy under dogs
        with Image.open(root / f"cats/{n}.png") as image:
            image.resize((64, 64)).save(root / f"cats/{n}_large.png")
        (root / f"dogs/copy_{n}.png").write_bytes((root / f"cats/{n}.png").read_bytes())
    split = unsplit_manifest(root, test=0.5, max_distance=30).set_index("path")["split"]
    for n in range(40):
        assert split[f"cats/{n}.png"] == split[f"cats/{n}_large.png"] == split[f"dogs/copy_{n}.png"]
    assert set(split) == {"train", "test"}


def hashed_manifest(count, split="train", start=0):
    """A manifest of `count` images with made-up content hashes: what selection_images reads."""
    numbers = range(start, start + count)
    return pd.DataFrame({"path": [f"{split}/{n}.png" for n in numbers], "split": split, "label": "cats",
                         "sha256": [hashlib.sha256(str(n).encode()).hexdigest() for n in numbers]})


NO_COPIES = pd.DataFrame(columns=["path", "group"])


def test_selection_images_are_the_fraction_of_training_images_stable_when_images_are_added():
    train, test = hashed_manifest(1000), hashed_manifest(300, split="test", start=5000)
    manifest = pd.concat([train, test], ignore_index=True)
    selected = catalog.selection_images(manifest, NO_COPIES, 0.2, seed=42)
    assert not selected[manifest["split"] == "test"].any()  # held-out images never
    assert abs(selected.sum() - 200) <= 3 * np.sqrt(1000 * 0.2 * 0.8)
    more = pd.concat([manifest, hashed_manifest(200, start=2000)], ignore_index=True)
    again = catalog.selection_images(more, NO_COPIES, 0.2, seed=42)
    assert again[:len(manifest)].equals(selected)  # adding images moves none in or out
    assert not catalog.selection_images(manifest, NO_COPIES, 0.2, seed=43).equals(selected)
    assert not catalog.selection_images(manifest, NO_COPIES, 0.0, seed=42).any()
    # Another draw than the split's from the same seed: the split's test images are no selection images.
    split = catalog.content_split(train, NO_COPIES, test=0.2, seed=42)
    overlap = (split == "test") & catalog.selection_images(train, NO_COPIES, 0.2, seed=42)
    assert 0 < overlap.sum() < (split == "test").sum()


def test_copies_are_selection_images_together_or_not_at_all():
    manifest = hashed_manifest(200)
    copies = pd.DataFrame({"path": manifest["path"], "group": np.arange(200) // 2})  # pairs of copies
    selected = catalog.selection_images(manifest, copies, 0.3, seed=0).to_numpy().reshape(100, 2)
    assert (selected[:, 0] == selected[:, 1]).all() and selected.any() and not selected.all()


@pytest.mark.parametrize("validation, test", [(-0.1, 0.2), (0.5, 0.5), (0.0, 1.0)])
def test_fractions_that_leave_no_training_images_say_what_is_allowed(validation, test):
    with pytest.raises(PipelineError, match=r"data\.split\.validation and data\.split\.test must be >= 0"):
        catalog.check_fractions(validation, test)


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


def test_a_class_folder_with_no_readable_image_is_named_not_silently_dropped(tmp_path):
    root = make_tree(tmp_path / "images", splits=(None,), per_class=3)
    (root / "green").mkdir()
    (root / "green/scan.jpg").write_text("not an image")
    (root / "yellow").mkdir()
    with pytest.warns(UserWarning, match=r"skipping green/: no readable image .*class 'green' is left out"):
        manifest, skipped = find_images(root)
    reasons = dict(zip(skipped["path"], skipped["reason"]))
    assert sorted(reasons) == ["green/", "green/scan.jpg", "yellow/"]
    assert "1 file, none readable" in reasons["green/"] and "add images Pillow can read" in reasons["green/"]
    assert "empty" in reasons["yellow/"] and "remove the folder" in reasons["yellow/"]
    assert "convert it to PNG or JPEG" in reasons["green/scan.jpg"]
    assert class_names(manifest) == ["blue", "red"]


def test_a_class_folder_empty_in_one_split_names_that_split(tmp_path):
    root = make_tree(tmp_path / "images", splits=("train", "test"), per_class=2)
    for file in (root / "test/red").iterdir():
        file.unlink()
    with pytest.warns(UserWarning, match="skipping test/red/"):
        _, skipped = find_images(root)
    [reason] = skipped.loc[skipped["path"] == "test/red/", "reason"]
    assert "class 'red' has no test images" in reason


def test_files_outside_every_class_folder_are_named_with_where_to_move_them(tmp_path):
    root = make_tree(tmp_path / "images", splits=("train", "test"), per_class=2)
    write_image(root / "loose.png", COLOURS["red"], 0)
    write_image(root / "train/also_loose.png", COLOURS["red"], 1)
    write_image(root / "extra/red/0.png", COLOURS["red"], 2)
    (root / ".DS_Store").write_text("hidden: not the user's image")
    with pytest.warns(UserWarning, match="skipping loose.png"):
        manifest, skipped = find_images(root)
    reasons = dict(zip(skipped["path"], skipped["reason"]))
    assert sorted(reasons) == ["extra/", "loose.png", "train/also_loose.png"]
    assert "move it into data.dir/<split>/<class>/" in reasons["loose.png"]
    assert "move it into train/<class>/" in reasons["train/also_loose.png"]
    assert "not a split folder" in reasons["extra/"] and "its 1 files are left out" in reasons["extra/"]
    assert len(manifest) == 8


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


def test_images_outside_class_folders_or_all_unreadable_say_what_is_wrong(tmp_path):
    write_image(tmp_path / "loose.png", COLOURS["red"], 0)
    with pytest.raises(PipelineError, match=r"no images in .* but 1 files directly in it: expected .*<class>/<image>"):
        find_images(tmp_path)
    (tmp_path / "red").mkdir()
    (tmp_path / "red/broken.png").write_text("not an image")
    with pytest.warns(UserWarning), pytest.raises(PipelineError, match=r"^no readable images in .*warnings above"):
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
