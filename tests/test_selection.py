import numpy as np
import pandas as pd
import pytest

from pipeline import PipelineError, paths
from pipeline.files import write_csv
from pipeline.modeling.evaluation import probability_columns
from pipeline.report import selection

CLASSES = ["NA", "dogs"]  # a class folder named NA stays a class


def write_head(name, cv_proba, heldout_proba, folds):
    """A head's saved out-of-fold probabilities and held-out predictions, as the train stage writes them."""
    y = np.array([0, 1] * (len(cv_proba) // 2))
    write_csv(paths.out_of_fold_file(name), pd.concat([pd.DataFrame(
        {"path": [f"train/{i}.png" for i in range(len(y))], "actual": np.array(CLASSES)[y], "fold": folds}),
        probability_columns(cv_proba, CLASSES)], axis=1))
    held_y = np.array([0, 1] * (len(heldout_proba) // 2))
    write_csv(paths.predictions_file(name), pd.concat([pd.DataFrame(
        {"path": [f"test/{i}.png" for i in range(len(held_y))], "split": "test", "actual": np.array(CLASSES)[held_y],
         "predicted": np.array(CLASSES)[heldout_proba.argmax(axis=1)], "probability": heldout_proba.max(axis=1)}),
        probability_columns(heldout_proba, CLASSES)], axis=1))


def right_then_wrong(n, wrong_from, confident):
    """Probabilities that give images 0..wrong_from-1 their true class and the rest the other one."""
    truth = np.eye(2)[[0, 1] * (n // 2)]
    proba = np.where(truth == 1, confident, 1 - confident)
    proba[wrong_from:] = proba[wrong_from:, ::-1]
    return proba


def test_the_ensemble_averages_the_heads_and_gets_cv_from_their_out_of_fold_probabilities(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folds = np.repeat([0, 1], 10)
    # Head a is right and sure on the first half, b on the second; each is unsure-wrong on the other half.
    sure_a = np.where(np.arange(20)[:, None] < 10, right_then_wrong(20, 20, 0.9), right_then_wrong(20, 0, 0.6))
    sure_b = np.where(np.arange(20)[:, None] >= 10, right_then_wrong(20, 20, 0.9), right_then_wrong(20, 0, 0.6))
    write_head("a", sure_a, sure_a[:8], folds)
    write_head("b", sure_b, sure_b[:8], folds)
    members = [{"tta": True, "fit_seconds": 1.0, "cv_seconds": 4.0}, {"tta": True, "fit_seconds": 2.0}]
    metrics, predictions = selection.ensemble(["a", "b"], CLASSES, members)
    assert metrics["tta"] and metrics["fit_seconds"] == 7.0  # the heads' whole cost
    assert metrics["cv"]["accuracy"]["mean"] == 1.0 and metrics["cv"]["accuracy"]["std"] == 0.0
    assert metrics["heldout"]["accuracy"] == 1.0 and metrics["members"] == ["a", "b"]
    assert predictions["actual"].tolist()[:2] == ["NA", "dogs"]
    np.testing.assert_allclose(predictions["p_dogs"], (sure_a[:8, 1] + sure_b[:8, 1]) / 2)
    assert selection.chosen_models("ensemble", metrics) == ["models/a.model", "models/b.model"]


def test_heads_cross_validated_on_other_folds_are_not_averaged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proba = right_then_wrong(20, 20, 0.9)
    write_head("a", proba, proba[:4], np.repeat([0, 1], 10))
    write_head("b", proba, proba[:4], np.tile([0, 1], 10))
    with pytest.raises(PipelineError, match="different images or folds"):
        selection.ensemble(["a", "b"], CLASSES, [{"fit_seconds": 1.0}] * 2)


def test_one_head_makes_no_ensemble():
    assert selection.ensemble(["only"], CLASSES, [{"fit_seconds": 1.0}]) is None


def test_choice_ties_go_to_the_lower_log_loss():
    table = pd.DataFrame({"row": ["a_unsure", "b_sure", "no_cv"], "cv_accuracy": [0.9, 0.9, np.nan],
                          "cv_log_loss": [0.4, 0.2, np.nan]})
    assert selection.choose(table) == "b_sure"
    assert selection.choose(table.iloc[[2]]) is None


def rows(selection_right, images=20, cv=(0.9, 0.8, None, None)):
    """A comparison table: heads a and b with CV, finetune_top and scratch_cnn without; `selection_right` images
    of `images` right per row, log loss 0.3 each."""
    names = ["a", "b", "finetune_top", "scratch_cnn"]
    return pd.DataFrame({"row": names, "cv_accuracy": [np.nan if c is None else c for c in cv],
                         "cv_log_loss": [0.3, 0.3, np.nan, np.nan], "selection_images": images,
                         "selection_accuracy": np.array(selection_right) / images, "selection_log_loss": 0.3})


@pytest.mark.parametrize("right, chosen", [
    ([15, 18, 17, 16], "finetune_top"),  # more right than the CV winner a: fine-tuning is chosen
    ([17, 18, 16, 12], "a"),  # fewer than a (b's better selection score does not count: b lost in CV)
    ([17, 12, 17, 17], "a"),  # a tie stays with the CV winner
    ([15, 12, 16, 19], "scratch_cnn"),  # of two rows that beat a, the one with the most right
])
def test_a_row_without_cv_is_chosen_only_with_more_selection_images_right_than_the_cv_winner(right, chosen):
    assert selection.choose(rows(right)) == chosen


def test_rows_without_cv_tied_on_selection_go_to_the_lower_selection_log_loss_and_stand_alone_without_heads():
    table = rows([10, 10, 18, 18]).assign(selection_log_loss=[0.3, 0.3, 0.5, 0.2])
    assert selection.choose(table) == "scratch_cnn"
    assert selection.choose(table.iloc[2:]) == "scratch_cnn"  # no head: the best row without CV
    assert selection.choose(rows([10, 10, 18, 18]).assign(selection_images=0, selection_accuracy=np.nan)) == "a"


def write_selection(name, proba, selected):
    write_csv(paths.selection_file(name), pd.concat([pd.DataFrame(
        {"path": selected, "actual": np.array(CLASSES)[[int(p[-5]) % 2 for p in selected]]}),
        probability_columns(proba, CLASSES)], axis=1))


def test_every_row_is_scored_on_the_same_selection_images_and_a_stale_file_says_run_dvc_repro(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folds = np.repeat([0, 1], 10)
    write_head("a", right_then_wrong(20, 20, 0.9), right_then_wrong(4, 4, 0.9), folds)  # right on all 20
    write_head("b", right_then_wrong(20, 10, 0.95), right_then_wrong(4, 4, 0.9), folds)  # right on the first 10
    selected = [f"train/{i}.png" for i in (2, 3, 12, 13)]  # a gets 4 right, b 2, their average 2 (b is surer)
    write_selection("finetune_top", right_then_wrong(4, 3, 0.8), selected)  # 3 right
    scores = selection.selection_scores(["a", "b", "ensemble", "finetune_top"], ["a", "b"], CLASSES, selected)
    right = scores.set_index("row").eval("selection_accuracy * selection_images")
    assert right.to_dict() == {"a": 4, "b": 2, "ensemble": 2, "finetune_top": 3}
    assert (scores["selection_images"] == 4).all() and scores["selection_log_loss"].notna().all()
    empty = selection.selection_scores(["a", "finetune_top"], ["a"], CLASSES, [])
    assert empty["selection_images"].tolist() == [0, 0] and empty["selection_accuracy"].isna().all()
    with pytest.raises(PipelineError, match="other selection images .* run `dvc repro`"):
        selection.selection_scores(["finetune_top"], [], CLASSES, selected[:3])
    with pytest.raises(PipelineError, match=r"scratch_cnn has no probabilities on the selection images .* `dvc repro`"):
        selection.selection_scores(["scratch_cnn"], [], CLASSES, selected)
