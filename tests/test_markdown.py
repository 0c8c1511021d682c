import hashlib
import json
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import PipelineError, paths
from pipeline.data.images import load_image
from pipeline.features import store
from pipeline.features.backbone import INTERMEDIATE
from pipeline.files import write_csv, write_json
from pipeline.modeling import live
from pipeline.report import markdown, plots
from pipeline.report.markdown import (
    augmentation_section,
    comparison,
    duplicates_section,
    markdown_table,
    per_class_table,
    summary_row,
)
from tests.conftest import make_tree, write_image


def predictions(wrong, n=40):
    actual = np.array(["a", "b"] * (n // 2))
    predicted = actual.copy()
    predicted[list(wrong)] = np.where(actual[list(wrong)] == "a", "b", "a")
    return pd.DataFrame({"path": [f"test/{i}.png" for i in range(n)], "split": "test",
                         "actual": actual, "predicted": predicted, "probability": 0.9})


def head(cv, seconds=1.0):
    return {"type": "logreg", "fit_seconds": seconds, "cv_seconds": 2.0,
            "cv": {"accuracy": {"mean": cv, "std": 0.01}, "log_loss": {"mean": 1 - cv, "std": 0.01}}}


def table_of(runs):
    return comparison([summary_row(name, *run) for name, run in runs.items()], {n: p for n, (_, p) in runs.items()})


def test_the_row_with_the_best_cv_is_chosen_even_when_another_scores_higher_held_out():
    runs = {
        "lucky": (head(0.90), predictions([])),  # best held-out, worse CV: not chosen
        "steady": (head(0.95), predictions([0, 1, 2])),
        "scratch": ({"type": "scratch", "approach": "small CNN from scratch", "fit_seconds": 9.0},
                    predictions(range(0, 40, 3))),
    }
    table = table_of(runs)
    assert list(table["row"]) == ["steady", "lucky", "scratch"] and table["chosen"].tolist() == [True, False, False]
    steady, scratch = table.iloc[0], table.iloc[2]
    assert steady["accuracy"] == pytest.approx(37 / 40) and steady["errors"] == 3 and np.isnan(steady["mcnemar_p"])
    assert steady["ci_low"] < steady["accuracy"] < steady["ci_high"]
    assert scratch["approach"] == "small CNN from scratch" and pd.isna(scratch["cv_accuracy"])
    assert "chosen" in markdown_table(table).splitlines()[2]


def test_comparisons_with_the_chosen_row_are_holm_adjusted():
    runs = {"chosen": (head(0.99), predictions([])), "worse": (head(0.5), predictions(range(0, 40, 4))),
            "same": (head(0.6), predictions([3]))}
    table = table_of(runs).set_index("row")
    raw = 2 * 0.5 ** 10  # 10 images only the chosen row gets right
    assert table.loc["worse", "mcnemar_p"] == pytest.approx(2 * raw)  # the smallest p, times two tests
    assert table.loc["same", "mcnemar_p"] == 1.0


def test_a_perfect_held_out_score_has_an_interval_below_one():
    table = table_of({"perfect": (head(0.99), predictions([], n=150))})
    assert table["ci_high"].iloc[0] == 1 and 0.97 < table["ci_low"].iloc[0] < 0.98


def test_without_cv_no_row_is_chosen_and_rows_are_tested_against_the_first():
    runs = {"tuned": ({"type": "finetune", "fit_seconds": 1}, predictions([])),
            "scratch": ({"type": "scratch", "fit_seconds": 1}, predictions(range(12)))}
    table = table_of(runs)
    assert not table["chosen"].any() and "reference" in markdown_table(table)


def test_rows_scored_on_different_images_are_not_compared():
    other = predictions([]).assign(path=lambda p: "val/" + p["path"])
    runs = {"a": (head(0.9), predictions([])), "b": (head(0.8), other)}
    with pytest.raises(PipelineError, match="different images"):
        table_of(runs)


def test_copies_are_listed_with_thumbnails_and_a_copy_under_two_labels_is_flagged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in ("train/cats/0.png", "test/dogs/0.png"):
        write_image(tmp_path / "images" / path, (200, 40, 40), seed=0)
    write_csv(paths.DUPLICATES, pd.DataFrame({
        "group": [0, 0], "path": ["test/dogs/0.png", "train/cats/0.png"], "split": ["test", "train"],
        "label": ["dogs", "cats"], "kind": "exact", "left_out": [True, False]}))
    text = duplicates_section(tmp_path / "images")
    assert "Held-out copies of training images left out of every held-out score: 1 " in text
    assert "**Groups under more than one label: 0.**" in text
    assert "`test/dogs/0.png` (test, exact, left out)" in text
    assert (paths.REPORTS / "duplicates.png").stat().st_size > 0


SETTINGS = {
    "data": {"dir": "images"},
    "backbone": {"input_size": 32, "pooling": "flatten"},
    "augment": {"copies": 2, "seed": 0, "rotation": 0.25, "width_shift": 0.0, "height_shift": 0.0, "shear": 0.0,
                "zoom": 0.0, "horizontal_flip": True},
    "evaluate": {"folds": 3, "seed": 0, "tta": False},
    "heads": {"logreg": {"type": "logreg", "C": 1.0}},
    "scratch": {"scratch_cnn": {"epochs": 3}},
}


def small_results(root, settings=SETTINGS):
    """What the stages before the report leave in `root` for 6 red and 6 blue images in train and in test.

    The head gets one red test image wrong; the scratch CNN calls every image red. Returns write()'s arguments.
    """
    images = make_tree(root / "images", splits=("train", "test"))
    files = sorted(images.rglob("*.png"))
    manifest = pd.DataFrame({"path": [f.relative_to(images).as_posix() for f in files],
                             "split": [f.parts[-3] for f in files], "label": [f.parent.name for f in files],
                             "sha256": [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]})
    write_csv(paths.MANIFEST, manifest)
    write_csv(paths.SKIPPED, pd.DataFrame(columns=["path", "reason"]))
    write_csv(paths.DUPLICATES, pd.DataFrame(columns=["group", "path", "split", "label", "kind", "left_out"]))
    classes = ["blue", "red"]
    rng = np.random.default_rng(0)
    for split, rows in manifest.groupby("split"):
        labels = [classes.index(label) for label in rows["label"]]
        arrays = {"features": rng.normal(size=(len(rows), 8)) + np.array(labels)[:, None],
                  INTERMEDIATE: rng.normal(size=(len(rows), 2, 2, 4))}
        store.write(paths.features_file(split), [arrays], labels, list(rows["path"]), classes,
                    started=time.perf_counter(),
                    meta={"backbone": "vgg16", "weights": "imagenet", "weights_sha256": "0" * 64, "input_size": 32,
                          "pooling": "flatten", "augmented_copies": settings["augment"]["copies"], "extracted": 0})
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    logreg = test[["path", "split"]].assign(actual=test["label"], predicted=test["label"])
    logreg.loc[test["label"].eq("red").idxmax(), "predicted"] = "blue"
    scratch = logreg.assign(predicted="red")
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    out_of_fold = train[["path"]].assign(actual=train["label"], fold=np.arange(len(train)) % 3)
    for name, table in (("logreg", logreg), ("scratch_cnn", scratch), ("out_of_fold", out_of_fold)):
        sure = np.where(table.get("predicted", table["actual"]) == "red", 0.9, 0.1)
        table[["p_blue", "p_red"]] = np.column_stack([1 - sure, sure])
        if name != "out_of_fold":
            table["probability"] = np.maximum(sure, 1 - sure)
    write_csv(paths.predictions_file("logreg"), logreg)
    write_csv(paths.out_of_fold_file("logreg"), out_of_fold)
    write_csv(paths.predictions_file("scratch_cnn"), scratch)
    curves = live.Curves(live.directory("scratch_cnn"))  # as the Keras callback logs them
    for loss, val_loss in [(0.9, 0.9), (0.7, 0.8), (0.6, 0.8)]:
        curves.epoch_end({"loss": loss, "val_loss": val_loss})
    curves.end(kept_epoch=1)
    write_json(paths.metrics_file("logreg"), head(0.9))
    write_json(paths.metrics_file("scratch_cnn"), {"type": "scratch", "approach": "small CNN from scratch",
                                                   "fit_seconds": 5.0})
    return ["logreg", "scratch_cnn"], ["logreg"], images, settings


def headings(markdown):
    return [line for line in markdown.splitlines() if line.startswith("#")]


def test_the_report_shows_the_chosen_row_then_the_checks_then_the_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    markdown.write(*small_results(tmp_path))
    text = (paths.REPORTS / "report.md").read_text()
    assert headings(text) == [
        "# Comparison", "## logreg: the chosen row", "### Confusion matrix", "### Per-class precision and recall",
        "### Misclassified images", "## Training labels to check", "## Training images unlike the rest",
        "## Copies of one image in several places", "## Augmented copies", "## Learning curves",
        "## Confusion matrices of the other rows", "## Feature extraction", "## Skipped files", "## Settings"]
    # One red test image called blue: red's recall and blue's precision drop.
    assert "| blue    |                 6 |    1.000 |       0.857 |" in text
    assert "| red     |                 6 |    0.833 |       1.000 |" in text
    settings = yaml.safe_load(text.split("```yaml\n")[1].split("```")[0])
    assert settings == SETTINGS
    assert "rotation up to ±90°, every other copy mirrored" in text
    for figure in ("confusion_logreg", "confusion_scratch_cnn", "misclassified", "augmentation", "curve_scratch_cnn"):
        assert f"({figure}.png)" in text and (paths.REPORTS / f"{figure}.png").stat().st_size > 0


def test_without_selection_images_rows_without_cv_cannot_be_chosen_and_the_report_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names, heads, images, settings = small_results(tmp_path)
    markdown.write(names, heads, images)
    summary = pd.read_csv(paths.REPORTS / "summary.csv")
    assert (summary["selection_images"] == 0).all() and summary["selection_accuracy"].isna().all()
    assert "so rows without CV cannot be chosen" in (paths.REPORTS / "report.md").read_text()
    selected = ["train/blue/0.png", "train/red/0.png"]  # the scratch CNN left no selection file: stale results
    with pytest.raises(PipelineError, match=r"scratch_cnn has no probabilities on the selection images"):
        markdown.write(names, heads, images, selected=selected)
    write_csv(paths.selection_file("scratch_cnn"), pd.DataFrame({  # sure and right on both
        "path": selected, "actual": ["blue", "red"], "p_blue": [0.9, 0.1], "p_red": [0.1, 0.9]}))
    table = markdown.write(names, heads, images, selected=selected).set_index("row")
    assert table["selection_accuracy"].to_dict() == {"logreg": 1.0, "scratch_cnn": 1.0}  # a tie: the head stays
    assert table.loc["logreg", "chosen"] and "**Chosen: logreg** (CV accuracy 0.900 ± 0.010, 1.000 on the 2 " \
        "selection images)" in (paths.REPORTS / "report.md").read_text()
    assert json.loads(paths.CHOSEN.read_text())["selection_images"] == 2


def rewrite_features(split, flipped=None, extra=None):
    """Write a split's features file again, with mirror images of every image or `extra` arrays (a mirror sample)."""
    cached = store.read(paths.features_file(split))
    intermediate = store.read(paths.features_file(split), INTERMEDIATE).X
    arrays = {"features": cached.X, INTERMEDIATE: intermediate}
    if flipped is not None:
        arrays["features_flipped"] = flipped
    store.write(paths.features_file(split), [arrays], cached.y, cached.paths, cached.classes, meta=cached.meta,
                started=time.perf_counter(), extra=extra)


def other_class(cached):
    """small_results' features are noise plus the class: these "mirror images" show the other class."""
    return cached.X + (1 - 2 * cached.y)[:, None]


@pytest.mark.parametrize("train_mirror_changes_class", [True, False])
def test_the_flip_warning_is_drawn_from_training_images_never_held_out_ones(tmp_path, monkeypatch,
                                                                            train_mirror_changes_class):
    monkeypatch.chdir(tmp_path)
    settings = {**SETTINGS, "evaluate": {**SETTINGS["evaluate"], "tta": True}}
    rows = small_results(tmp_path, settings)
    train, test = (store.read(paths.features_file(split)) for split in ("train", "test"))
    rewrite_features("train", extra={store.SAMPLE_ROWS: np.arange(len(train.y)), "features_flipped_sample":
                                     other_class(train) if train_mirror_changes_class else train.X})
    # Held-out mirror images that say the opposite: read, they would decide the other way.
    rewrite_features("test", flipped=test.X if train_mirror_changes_class else other_class(test))
    markdown.write(*rows)
    text = (paths.REPORTS / "report.md").read_text()
    assert ("## Warnings" in text) == train_mirror_changes_class
    assert ("augment.horizontal_flip: false" in text) == train_mirror_changes_class


def test_a_class_never_predicted_has_no_precision():
    table = per_class_table(pd.DataFrame({"actual": ["a", "b", "b"], "predicted": ["a", "a", "a"]}), ["a", "b"])
    assert "| b       |                 2 |    0.000 |         n/a |" in table


def test_the_augmentation_preview_shows_the_copies_the_feature_cache_holds(tmp_path, monkeypatch):
    from pipeline.data import augment

    monkeypatch.chdir(tmp_path)
    shown = []
    monkeypatch.setattr(plots, "augmentation_preview", lambda images, title, path: shown.extend(images))
    _, _, images, settings = small_results(tmp_path)
    text = "\n\n".join(augmentation_section(settings["augment"], images, 32))
    assert "beside their 2 augmented copies in the feature cache" in text and len(shown) == 6
    manifest = pd.read_csv(paths.MANIFEST)
    blue = manifest[manifest["path"] == "train/blue/0.png"]
    # What the features stage computes for this image: its content's key decides its copies.
    cached = augment.Copies(settings["augment"], 2, settings["augment"]["seed"])(
        load_image(images / "train/blue/0.png", 32)[None], list(blue["sha256"]))[0]
    original, caption, copies = shown[0]
    assert caption == "blue: 0.png" and [c for _, c in copies][0].endswith("°, mirror")
    np.testing.assert_array_equal(np.stack([copy for copy, _ in copies]), cached)
    assert not np.array_equal(cached[0], augment.mirror(original))  # rotated too, not only mirrored


def test_without_cached_copies_the_preview_draws_some_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = {**SETTINGS, "augment": {**SETTINGS["augment"], "copies": 0}}
    text = augmentation_section(settings["augment"], small_results(tmp_path, settings)[2], 32)[1]
    assert "4 copies drawn as the feature cache would draw them (`augment.copies` is 0" in text
    off = {**settings["augment"], "rotation": 0.0, "horizontal_flip": False}
    assert "None: every transform in `augment` is off" in augmentation_section(off, "images", 32)[1]
