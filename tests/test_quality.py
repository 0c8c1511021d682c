import h5py
import numpy as np
import pandas as pd
import pytest

from pipeline.features.backbone import INTERMEDIATE
from pipeline.report.quality import doubted_labels, typicality


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


def test_the_image_unlike_the_others_scores_lowest(tmp_path):
    """Block-4 maps as the features stage stores them: 30 alike, one (index 17) from elsewhere."""
    rng = np.random.default_rng(0)
    maps = rng.normal(size=64) + rng.normal(0, 0.3, (31, 3, 3, 64))
    maps[17] = rng.normal(size=(3, 3, 64))
    path = tmp_path / "train.h5"
    with h5py.File(path, "w") as h5:
        h5[INTERMEDIATE] = maps.astype(np.float32)
        h5["paths"] = np.asarray([f"train/x/{i}.png" for i in range(31)], dtype=h5py.string_dtype())
    files, scores = typicality(path)
    assert files[17] == "train/x/17.png" and len(scores) == 31
    assert np.argmin(scores) == 17 and scores[17] < np.median(np.delete(scores, 17)) / 2
    assert ((0 <= scores) & (scores <= 1)).all()
