import numpy as np
import pandas as pd
import pytest

from pipeline import PipelineError
from pipeline.report import comparison, summary_row


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
