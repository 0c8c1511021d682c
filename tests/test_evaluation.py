import numpy as np
import pytest
from sklearn.datasets import make_classification

from pipeline import PipelineError
from pipeline.evaluation import METRICS, evaluate, scores
from pipeline.features import Features
from pipeline.heads import make_head


def split_features(n, split, offset=0):
    """n images of one two-class problem; an offset past another call's rows draws disjoint ones."""
    X, y = make_classification(n_samples=400, n_features=10, class_sep=2.0, random_state=0)
    rows = np.arange(offset, offset + n)
    return Features(X=X[rows], y=y[rows], paths=[f"{split}/{i}.png" for i in range(n)],
                    classes=["a", "b"], meta={"split": split})


def test_scores_of_perfect_and_of_inverted_predictions():
    y = np.array([0, 1, 1, 0])
    perfect = np.eye(2)[y] * 0.98 + 0.01
    assert scores(y, perfect)["accuracy"] == 1 and scores(y, perfect)["roc_auc"] == 1
    inverted = scores(y, perfect[:, ::-1])
    assert inverted["accuracy"] == 0 and inverted["log_loss"] > 4


def test_cross_validation_then_held_out_scores():
    model = make_head("logreg", {"type": "logreg"})
    fitted, result, predictions = evaluate(model, split_features(100, "train"),
                                           split_features(40, "test", offset=100), folds=5, seed=0)
    assert set(result["cv"]) == set(METRICS)
    assert result["cv"]["accuracy"]["mean"] > 0.8 and result["cv"]["accuracy"]["std"] >= 0
    assert result["heldout"]["split"] == "test" and result["heldout"]["images"] == 40
    assert result["heldout"]["accuracy"] > 0.8
    assert list(predictions.columns) == ["path", "split", "actual", "predicted", "probability"]
    assert set(predictions["predicted"]) <= {"a", "b"}
    assert hasattr(fitted[-1], "coef_")


def test_without_held_out_data_the_predictions_are_out_of_fold():
    _, result, predictions = evaluate(make_head("logreg", {"type": "logreg"}),
                                      split_features(50, "train"), None, folds=5, seed=0)
    assert "heldout" not in result
    assert (predictions["split"] == "cv").all() and len(predictions) == 50


def test_more_folds_than_images_per_class_is_explained():
    with pytest.raises(PipelineError, match="lower evaluate.folds"):
        evaluate(make_head("logreg", {"type": "logreg"}), split_features(12, "train"), None,
                 folds=10, seed=0)


def test_a_bad_setting_value_fails_with_the_estimators_reason():
    with pytest.raises(PipelineError, match=r"'C' parameter of LogisticRegression must be"):
        evaluate(make_head("logreg", {"type": "logreg", "C": -1.0}),
                 split_features(50, "train"), None, folds=5, seed=0)
