import numpy as np
import pandas as pd
import pytest

from pipeline import PipelineError, paths
from pipeline.files import write_csv
from pipeline.report import comparison, duplicates_section, markdown_table, summary_row
from tests.conftest import write_image


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
