import json

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from pipeline import paths
from pipeline.files import read_table
from pipeline.modeling import outputs
from pipeline.modeling.saved_model import SavedModel

METRICS = {"cv": {"accuracy": {"mean": 0.9, "std": 0.05}}, "heldout": {"split": "test", "accuracy": 0.875}}


def fitted():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    return LogisticRegression().fit(X, [0, 0, 1, 1])


def test_a_row_leaves_its_model_metrics_predictions_and_cv_probabilities_and_no_curve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = SavedModel(fitted(), ["cats", "dogs"], 32)
    predictions = pd.DataFrame({"path": ["a.jpg"], "actual": ["cats"], "predicted": ["cats"]})
    out_of_fold = pd.DataFrame({"path": ["b.jpg"], "fold": [0], "p_cats": [0.7], "p_dogs": [0.3]})
    outputs.save("logreg", model, METRICS, predictions, out_of_fold)

    loaded = SavedModel.load(paths.model_file("logreg"))
    np.testing.assert_array_equal(loaded.model.predict_proba([[1.5]]), model.model.predict_proba([[1.5]]))
    assert loaded.classes == ["cats", "dogs"]
    assert read_table(paths.predictions_file("logreg"), ["actual"]).equals(predictions)
    assert read_table(paths.out_of_fold_file("logreg")).equals(out_of_fold)
    assert json.loads(paths.metrics_file("logreg").read_text()) == METRICS
    # Learning curves are DVCLive's, written while Keras trains (pipeline.modeling.live): no file of ours beside these.
    assert sorted(p.name for p in (tmp_path / "results/logreg").iterdir()) == [
        "metrics.json", "out_of_fold.csv", "predictions.csv"]


def test_a_row_without_cv_writes_no_cv_probabilities(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outputs.save("scratch", SavedModel(fitted(), ["cats", "dogs"], 32), {"heldout": METRICS["heldout"]},
                 pd.DataFrame({"path": ["a.jpg"]}))
    assert paths.model_file("scratch").exists() and paths.metrics_file("scratch").exists()
    assert not paths.out_of_fold_file("scratch").exists()


def test_the_summary_line_gives_cv_and_held_out_accuracy():
    assert outputs.summary("logreg", METRICS) == "logreg: CV accuracy 0.900 ± 0.050, test accuracy 0.875"
    assert outputs.summary("scratch", {"heldout": METRICS["heldout"]}) == "scratch: test accuracy 0.875"
