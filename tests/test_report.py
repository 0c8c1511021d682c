import numpy as np
import pandas as pd
import pytest

from pipeline import PipelineError
from pipeline.report import comparison, doubted_labels, summary_row


def predictions(wrong, n=40):
    actual = np.array(["a", "b"] * (n // 2))
    predicted = actual.copy()
    predicted[list(wrong)] = np.where(actual[list(wrong)] == "a", "b", "a")
    return pd.DataFrame({"path": [f"test/{i}.png" for i in range(n)], "split": "test",
                         "actual": actual, "predicted": predicted, "probability": 0.9})


def test_rows_are_ranked_by_held_out_accuracy_and_tested_against_the_best():
    runs = {
        "good": ({"type": "logreg", "fit_seconds": 1.0, "cv_seconds": 2.0,
                  "cv": {"accuracy": {"mean": 0.9, "std": 0.01}}}, predictions([0])),
        "bad": ({"type": "scratch", "approach": "small CNN from scratch", "fit_seconds": 9.0},
                predictions(range(0, 40, 3))),
    }
    table = comparison([summary_row(name, *run) for name, run in runs.items()],
                       {name: p for name, (_, p) in runs.items()})
    assert list(table["row"]) == ["good", "bad"]
    good, bad = table.iloc[0], table.iloc[1]
    assert good["accuracy"] == pytest.approx(39 / 40) and good["errors"] == 1 and np.isnan(good["mcnemar_p"])
    assert good["ci_low"] < good["accuracy"] <= good["ci_high"]
    assert bad["errors"] == 14 and bad["mcnemar_p"] < 0.05  # 13 images only "good" gets right
    assert bad["approach"] == "small CNN from scratch" and good["approach"] == "bottleneck + logreg"
    assert good["seconds"] == 3.0 and pd.isna(bad["cv_accuracy"])


def test_rows_scored_on_different_images_are_not_compared():
    other = predictions([]).assign(path=lambda p: "val/" + p["path"])
    runs = {"a": ({"type": "logreg", "fit_seconds": 1}, predictions([])),
            "b": ({"type": "logreg", "fit_seconds": 1}, other)}
    with pytest.raises(PipelineError, match="different images"):
        comparison([summary_row(n, *r) for n, r in runs.items()], {n: p for n, (_, p) in runs.items()})


def test_only_a_training_label_that_cross_validation_confidently_contradicts_is_doubted():
    rng = np.random.default_rng(0)
    actual = np.array(["ants", "bees"] * 20)
    p_bees = np.where(actual == "bees", rng.uniform(0.6, 0.95, 40), rng.uniform(0.05, 0.4, 40))
    p_bees[2] = 0.99  # an "ant" that the folds which never saw it call a bee
    p_bees[4] = 0.55  # an unsure one: a mistake, but not a confident one
    out_of_fold = pd.DataFrame({"path": [f"train/{i}.jpg" for i in range(40)], "actual": actual,
                                "p_ants": 1 - p_bees, "p_bees": p_bees})
    doubted = doubted_labels(out_of_fold, ["ants", "bees"])
    assert list(doubted["path"]) == ["train/2.jpg"]
    assert doubted["predicted"].iloc[0] == "bees" and doubted["probability"].iloc[0] == pytest.approx(0.99)
    assert doubted_labels(out_of_fold.drop(index=2), ["ants", "bees"]).empty
