import tracemalloc

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_digits, make_classification
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, normalize
from sklearn.utils.metadata_routing import get_routing_for_object

from pipeline import PipelineError
from pipeline.features.store import Features
from pipeline.modeling import evaluation
from pipeline.modeling.evaluation import (
    METRICS,
    cross_validate,
    evaluate,
    fold_jobs,
    grouped_folds,
    scores,
    shared_gram,
)
from pipeline.modeling.heads import make_head
from pipeline.modeling.kernel_svm import KernelSVM


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
    fitted, result, predictions, out_of_fold = evaluate(model, split_features(100, "train"),
                                                        split_features(40, "test", offset=100), folds=5, seed=0)
    assert set(result["cv"]) == set(METRICS)
    assert result["cv"]["accuracy"]["mean"] > 0.8 and result["cv"]["accuracy"]["std"] >= 0
    assert result["heldout"]["split"] == "test" and result["heldout"]["images"] == 40
    assert result["heldout"]["accuracy"] > 0.8
    assert list(predictions.columns) == ["path", "split", "actual", "predicted", "probability", "p_a", "p_b"]
    assert set(predictions["predicted"]) <= {"a", "b"}
    assert hasattr(fitted[-1], "coef_")
    # Every training image's probabilities from the fold that did not train on it, for the label check.
    assert list(out_of_fold.columns) == ["path", "actual", "fold", "p_a", "p_b"] and len(out_of_fold) == 100
    np.testing.assert_allclose(out_of_fold[["p_a", "p_b"]].sum(axis=1), 1)
    assert (out_of_fold[["p_a", "p_b"]].idxmax(axis=1).str[2:] == out_of_fold["actual"]).mean() > 0.8


def test_without_held_out_data_the_predictions_are_out_of_fold():
    _, result, predictions, _ = evaluate(make_head("logreg", {"type": "logreg"}),
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


def test_grouped_folds_keep_every_copy_of_an_image_in_its_fold():
    y = np.repeat([0, 1, 2], 10)
    tested = []
    for train, test in grouped_folds(y, n_views=4, folds=5, seed=0):
        assert not set(train // 4) & set(test // 4)  # no image on both sides, in any of its views
        assert (test % 4 == 0).all()  # scored on the images themselves, not on their copies
        assert len(train) == 4 * len(set(train // 4))  # every view of a training image is used
        tested += list(test // 4)
    assert sorted(tested) == list(range(30))


def test_twins_across_folds_would_show_as_a_perfect_score_on_random_labels():
    """A 1-nearest-neighbour model finds an image's exact copy if a fold trained on it."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 5)), rng.integers(0, 2, 60)
    views = np.repeat(X[:, None], 3, axis=1)  # two "augmented" copies identical to the image
    _, _, per_fold = cross_validate(KNeighborsClassifier(1), views, y, 2, folds=5, seed=0)
    assert per_fold["accuracy"].mean() < 0.75  # chance is 0.5; leaking twins would give 1.0


def test_duplicate_images_share_a_fold_so_a_copy_never_scores_its_original():
    """Pairs of identical images with random labels: if a pair is split, 1-NN copies the twin's label."""
    rng = np.random.default_rng(1)
    X = np.repeat(rng.normal(size=(40, 5)), 2, axis=0)  # images 2k and 2k+1 are the same picture
    y = np.repeat(rng.integers(0, 2, 40), 2)
    groups = np.arange(80) // 2
    for train, test in grouped_folds(y, n_views=1, folds=5, seed=0, groups=groups):
        assert not set(groups[train]) & set(groups[test])
    _, _, apart = cross_validate(KNeighborsClassifier(1), X[:, None], y, 2, folds=5, seed=0)
    _, _, together = cross_validate(KNeighborsClassifier(1), X[:, None], y, 2, folds=5, seed=0, groups=groups)
    assert apart["accuracy"].mean() > 0.9 and together["accuracy"].mean() < 0.75


class RecordsGroups(KNeighborsClassifier):
    """A classifier whose fit asks for groups, as the dense head's does, and remembers them."""

    __metadata_request__fit = {"groups": True}

    def fit(self, X, y, groups=None):
        self.groups_seen_ = groups
        return super().fit(X, y)


class IgnoresGroups(RecordsGroups):
    """Takes groups in its fit but does not ask for them: scikit-learn's routing then passes none."""

    __metadata_request__fit = {"groups": None}


def test_row_groups_reach_an_estimator_that_asks_for_them_inside_a_pipeline():
    model = make_pipeline(StandardScaler(), RecordsGroups(1))
    train = split_features(30, "train")
    train.augmented = train.X[:, None] + 0.01  # one augmented copy per image
    fitted, _, _, out_of_fold = evaluate(model, train, None, folds=3, seed=0, groups=np.arange(30) // 3)
    np.testing.assert_array_equal(fitted[-1].groups_seen_, np.repeat(np.arange(30) // 3, 2))
    assert sorted(out_of_fold["fold"].unique()) == [0, 1, 2]
    assert out_of_fold.groupby(np.arange(30) // 3)["fold"].nunique().max() == 1


def test_metadata_reaches_only_the_estimators_that_ask_for_it_and_routing_stays_off_outside():
    train = split_features(30, "train")
    X, groups = train.X, np.arange(30) // 3
    fitted, _ = evaluation.fit(make_pipeline(StandardScaler(), IgnoresGroups(1)), X, train.y, groups=groups)
    assert fitted[-1].groups_seen_ is None
    fitted, _ = evaluation.fit(make_pipeline(StandardScaler(), RecordsGroups(1)), X, train.y, groups=groups,
                               curves="a folder")  # asked for by no step: left out, where a plain fit would fail
    np.testing.assert_array_equal(fitted[-1].groups_seen_, groups)
    fitted, _ = evaluation.fit(make_head("logreg", {"type": "logreg"}), X, train.y, groups=groups)
    assert fitted.score(X, train.y) > 0.9
    assert not sklearn.get_config()["enable_metadata_routing"]  # routing is on for those fits only


def test_the_heads_that_keep_copies_together_ask_for_groups():
    for kind, asks in (("dense", {"groups", "curves"}), ("rbf_svm", {"groups"}), ("linear_svm", {"groups"}),
                       ("logreg", set())):
        with sklearn.config_context(enable_metadata_routing=True):
            routing = get_routing_for_object(make_head(kind, {"type": kind}))
            assert routing.consumes("fit", {"groups", "curves"}) == asks, kind


def test_test_time_augmentation_averages_image_and_mirror():
    train, test = split_features(100, "train"), split_features(40, "test", offset=100)
    test.flipped = -test.X  # a "mirror" the model sees as the opposite class
    model = make_head("logreg", {"type": "logreg"})
    _, plain, _, _ = evaluate(model, train, test, folds=5, seed=0, tta=False)
    _, averaged, predictions, _ = evaluate(model, train, test, folds=5, seed=0, tta=True)
    assert averaged["tta"] and not plain["tta"]
    assert averaged["heldout"]["accuracy"] < plain["heldout"]["accuracy"]
    assert predictions["probability"].max() < 0.9  # opposite votes pull towards 0.5


def test_folds_fitted_side_by_side_give_what_folds_fitted_one_by_one_give():
    train = split_features(120, "train")
    views, model = train.views(), make_head("svm", {"type": "rbf_svm", "scale": "l2"})
    one_by_one = cross_validate(model, views, train.y, 2, folds=5, seed=0, n_jobs=1)
    side_by_side = cross_validate(model, views, train.y, 2, folds=5, seed=0, n_jobs=3)
    np.testing.assert_array_equal(one_by_one[0], side_by_side[0])
    np.testing.assert_array_equal(one_by_one[1], side_by_side[1])


@pytest.mark.parametrize("head", [{"type": "rbf_svm", "scale": "l2"}, {"type": "linear_svm", "scale": "none"}])
def test_svm_folds_score_from_one_gram_without_their_rows_as_fits_on_the_rows_score(head, monkeypatch):
    train = split_features(150, "train")
    train.augmented = train.X[:, None] + np.random.default_rng(0).normal(scale=0.3, size=(150, 1, 10))
    given, fit_gram = [], KernelSVM.fit_gram

    def recording_fit_gram(self, gram, y, groups, row_sums, n_features):
        given.append(gram.shape == (len(y), len(y)) and n_features == 10)
        return fit_gram(self, gram, y, groups, row_sums, n_features)

    def no_rows(*args, **kwargs):
        raise AssertionError("a fold copied its rows")

    monkeypatch.setattr(KernelSVM, "fit_gram", recording_fit_gram)
    monkeypatch.setattr(evaluation, "fit_own_rows", no_rows)
    views, y = train.views(), train.y
    shared = cross_validate(make_head("svm", head), views, y, 2, folds=5, seed=0)
    assert given == [True] * 5  # five folds, none through fit_own_rows
    monkeypatch.undo()
    monkeypatch.setattr(evaluation, "shared_gram", lambda model, rows: None)
    own = cross_validate(make_head("svm", head), views, y, 2, folds=5, seed=0)
    np.testing.assert_allclose(shared[0], own[0], atol=1e-5)  # out-of-fold probabilities
    np.testing.assert_array_equal(shared[1], own[1])


def test_the_final_svm_fit_slices_the_shared_gram(monkeypatch):
    train, heldout = split_features(150, "train"), split_features(60, "test", offset=150)
    given, fit = [], KernelSVM.fit

    def recording_fit(self, X, y, groups=None, gram=None):
        given.append(gram is not None and gram.shape == (len(X), len(X)))
        return fit(self, X, y, groups, gram)

    monkeypatch.setattr(KernelSVM, "fit", recording_fit)
    shared = evaluate(make_head("svm", {"type": "rbf_svm", "scale": "l2"}), train, heldout, folds=5, seed=0)
    assert given == [True]  # the folds fit from the Gram alone
    monkeypatch.setattr(evaluation, "shared_gram", lambda model, rows: None)
    own = evaluate(make_head("svm", {"type": "rbf_svm", "scale": "l2"}), train, heldout, folds=5, seed=0)
    assert given == [True, False] + [False] * 5
    np.testing.assert_allclose(shared[2].filter(like="p_"), own[2].filter(like="p_"), atol=1e-5)  # held-out


def test_the_final_fit_scales_the_rows_in_place_only_where_the_caller_gives_them_up():
    train, heldout = split_features(100, "train"), split_features(40, "test", offset=100)
    before = train.X.copy()
    kept = evaluate(make_head("l", {"type": "logreg", "scale": "l2"}), train, heldout, folds=3, seed=0)
    np.testing.assert_array_equal(train.X, before)
    given = evaluate(make_head("l", {"type": "logreg", "scale": "l2"}), train, heldout, folds=3, seed=0,
                     keep_rows=False)
    np.testing.assert_allclose(np.linalg.norm(train.X, axis=1), 1, rtol=1e-5)  # unit length where they were
    np.testing.assert_allclose(given[2].filter(like="p_"), kept[2].filter(like="p_"), atol=1e-9)
    assert given[1]["cv"] == kept[1]["cv"]


def test_the_shared_gram_is_what_a_fit_on_any_rows_would_compute():
    """Sliced for some rows, the same dot products and row sums as the rows the SVM sees in a fit on those rows
    alone: scaled to unit length (a row of zeros stays zeros, as Normalizer leaves it), or as they are."""
    rows = StandardScaler().fit_transform(load_digits(n_class=2, return_X_y=True)[0]).astype(np.float32)
    rows[3] = 0
    some = np.arange(0, len(rows), 3)
    unit = shared_gram(make_head("svm", {"type": "rbf_svm", "scale": "l2"}), rows)
    np.testing.assert_allclose(unit.products[np.ix_(some, some)], normalize(rows[some]) @ normalize(rows[some]).T,
                               atol=1e-6)
    np.testing.assert_allclose(unit.sums[some], normalize(rows[some]).sum(axis=1), atol=1e-5)
    assert not unit.products[3].any() and unit.sums[3] == 0 and unit.n_features == 64
    raw = shared_gram(make_head("svm", {"type": "linear_svm", "scale": "none"}), rows)
    np.testing.assert_allclose(raw.products[np.ix_(some, some)], rows[some] @ rows[some].T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(raw.sums, rows.sum(axis=1), rtol=1e-5, atol=1e-4)
    # A standard scaler's mean and variance are each fit's own; a logistic regression takes no gram
    assert shared_gram(make_head("svm", {"type": "rbf_svm"}), rows) is None
    assert shared_gram(make_head("logreg", {"type": "logreg", "scale": "l2"}), rows) is None


def test_a_head_that_must_fit_alone_gets_one_fold_at_a_time(monkeypatch):
    monkeypatch.setattr(evaluation, "cpu_count", lambda: 4)
    assert fold_jobs(make_head("l", {"type": "logreg"})) == 4
    assert fold_jobs(make_head("d", {"type": "dense", "scale": "l2"})) == 1
    assert fold_jobs(KNeighborsClassifier()) == 4


def traced_peak(call):
    """Bytes allocated at most while `call()` runs (numpy reports its arrays to tracemalloc), and its result."""
    tracemalloc.start()
    try:
        result = call()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("head", [{"type": "logreg", "C": 1.0}, {"type": "rbf_svm", "scale": "l2"}])
def test_a_fit_on_its_own_rows_holds_them_once_and_fits_the_same_model(head):
    X, y = make_classification(n_samples=4000, n_features=400, random_state=0)
    rows, index = X.astype(np.float32), np.arange(0, 4000, 2)
    before = rows.copy()
    model = make_head("head", head)
    fold_rows = rows[index].nbytes

    plain_peak, (plain, _) = traced_peak(lambda: evaluation.fit(model, rows[index], y[index]))
    own_peak, (own, _) = traced_peak(lambda: evaluation.fit_own_rows(model, rows, index, y[index]))
    assert own_peak < plain_peak - 0.7 * fold_rows  # the scaler's copy of the fold's rows is not made
    np.testing.assert_array_equal(rows, before)  # the caller's rows are not scaled
    np.testing.assert_allclose(own.predict_proba(rows[1::2]), plain.predict_proba(rows[1::2]), atol=1e-6)
    assert all(value for name, value in own.get_params().items() if name.endswith("__copy"))
    scored = rows[1::2].copy()
    own.predict_proba(scored)
    np.testing.assert_array_equal(scored, rows[1::2])  # predicting scales a copy, as before
