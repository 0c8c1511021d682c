
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.metrics import balanced_accuracy_score, recall_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from pipeline import PipelineError
from pipeline.features import store
from pipeline.features.backbone import INTERMEDIATE
from pipeline.modeling import heads, networks
from pipeline.modeling.heads import HEADS, DenseHead, make_head

FAST = {"dense": {"epochs": 30, "patience": 5, "learning_rate": 1e-2}}
# Enough to pass scikit-learn's accuracy check on its blobs; every Keras fit costs about a second.
CHECKED_DENSE = {"units": 8, "epochs": 3, "patience": 1, "learning_rate": 1e-2}
EXPECTED_FAILED_CHECKS = {
    DenseHead: {"check_class_weight_classifiers": "CHECKED_DENSE's 3 epochs of 2 steps are too few to follow any "
                                                  "weights on its noisy blobs (10 epochs pass); "
                                                  "test_class_weight_balanced_raises_the_small_classs_recall checks"},
}


def blobs(n_classes):
    return make_classification(n_samples=120, n_features=20, n_informative=6, n_classes=n_classes,
                               n_clusters_per_class=1, class_sep=2.5, random_state=0)


@pytest.mark.parametrize("kind", sorted(HEADS))
@pytest.mark.parametrize("n_classes", [2, 3])
def test_every_head_learns_and_gives_probabilities(kind, n_classes):
    X, y = blobs(n_classes)
    model = make_head(kind, {"type": kind, **FAST.get(kind, {})}, seed=0)
    assert model.fit(X[:90], y[:90]) is model
    proba = model.predict_proba(X[90:])
    assert proba.shape == (30, n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-9)
    assert model.score(X[90:], y[90:]) > 0.8
    assert list(model.classes_) == list(range(n_classes))


def test_dense_head_follows_the_estimator_contract():
    head = DenseHead(units=8, epochs=3)
    assert head.get_params()["units"] == 8
    assert not [a for a in vars(head) if a.endswith("_")]  # nothing learned before fit
    cloned = clone(head)
    assert cloned.get_params() == head.get_params() and cloned is not head
    X, y = blobs(2)
    head.fit(X, np.where(y == 1, "dog", "cat"))
    assert list(head.classes_) == ["cat", "dog"]
    assert set(head.predict(X)) <= {"cat", "dog"}
    assert len(head.history_["val_loss"]) <= 3


@parametrize_with_checks(
    [DenseHead(**CHECKED_DENSE) if cls is DenseHead else cls(**defaults) for cls, defaults in HEADS.values()],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS.get(type(estimator), {}),
    xfail_strict=True,
)
def test_every_head_passes_scikit_learns_estimator_checks(estimator, check):
    check(estimator)


def test_dense_head_stops_early_on_whole_images_never_on_twins(monkeypatch):
    """Three identical rows per image: a row split would watch copies of the rows it trains on."""
    X, y = blobs(2)
    copies = 3
    rows, labels = np.repeat(X, copies, axis=0), np.repeat(y, copies)
    images = np.repeat([f"image{n}" for n in range(len(y))], copies)
    seen = {}

    def recording_train(model, data, validation, *args, **kwargs):
        seen["fit"], seen["stop"] = data[:], validation[:]  # networks.Views: the chosen rows
        return real_train(model, data, validation, *args, **kwargs)

    real_train = networks.train
    monkeypatch.setattr(networks, "train", recording_train)
    model = make_head("dense", {"type": "dense", "epochs": 2, "validation_fraction": 0.2})
    model.fit(rows, labels, densehead__groups=images)  # how a caller passes groups through the pipeline

    held = model[-1].stopping_groups_
    assert isinstance(held, np.ndarray) and len(held) == 24  # a fifth of the 120 images
    assert set(held) <= set(images)
    assert np.bincount(labels[np.isin(images, held)]).tolist() == [36, 36]  # stratified, 3 rows each
    assert len(seen["stop"]) == copies * len(held)
    fit_rows = {row.tobytes() for row in seen["fit"]}
    assert not [row for row in seen["stop"] if row.tobytes() in fit_rows]


def test_dense_head_without_groups_stops_on_a_slice_of_rows():
    X, y = blobs(3)
    head = DenseHead(units=8, epochs=2).fit(X, y)
    np.testing.assert_array_equal(head.stopping_groups_, np.sort(head.stopping_groups_))
    assert len(head.stopping_groups_) == 18 and head.stopping_groups_.max() < len(y)
    assert np.bincount(y[head.stopping_groups_]).tolist() == [6, 6, 6]


def test_dense_head_refuses_groups_of_the_wrong_length():
    X, y = blobs(2)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        DenseHead(epochs=1).fit(X, y, groups=np.arange(len(y) - 1))


def test_settings_reach_the_estimator_and_scaling_comes_first():
    model = make_head("strong", {"type": "logreg", "C": 0.01, "scale": "l2"}, seed=3)
    assert model[-1].C == 0.01 and model[-1].random_state == 3
    assert type(model[0]).__name__ == "Normalizer"
    assert len(make_head("raw", {"type": "logreg", "scale": "none"})) == 1


def test_the_standard_scaler_fitted_in_chunks_scales_as_scikit_learns_with_a_fraction_of_the_memory():
    X = make_classification(n_samples=3000, n_features=300, random_state=0)[0].astype(np.float32) * 3 + 5
    weights = np.linspace(0.5, 2, len(X))
    expected = StandardScaler().fit(X, sample_weight=weights)
    chunked = heads.StandardScalerInChunks().fit(X[:100]).fit(X, sample_weight=weights)  # a refit starts afresh
    np.testing.assert_allclose(chunked.mean_, expected.mean_, rtol=1e-7)  # float32 rows: sums round at 1e-9
    np.testing.assert_allclose(chunked.var_, expected.var_, rtol=1e-7)
    assert chunked.n_samples_seen_ == pytest.approx(expected.n_samples_seen_)  # the weights' sum
    np.testing.assert_allclose(chunked.transform(X), expected.transform(X), atol=1e-5)

    def peak(scaler):
        tracemalloc.start()
        scaler.fit(X)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    assert peak(StandardScaler()) > 1.9 * X.nbytes  # every deviation in float64 at once
    assert peak(heads.StandardScalerInChunks()) < 0.4 * X.nbytes
    assert type(make_head("standard", {"type": "logreg"})[0]) is heads.StandardScalerInChunks


def test_an_unknown_type_lists_the_known_ones():
    with pytest.raises(PipelineError, match=r"heads\.mine: unknown type 'xgboost'; known types: dense, logreg"):
        make_head("mine", {"type": "xgboost"})


def test_an_unknown_setting_suggests_the_right_name():
    with pytest.raises(PipelineError, match=r"logreg has no setting 'c'; did you mean 'C'\?"):
        make_head("logreg", {"type": "logreg", "c": 1.0})


def test_a_head_without_type_or_with_a_bad_scale_is_refused():
    with pytest.raises(PipelineError, match="needs a type"):
        make_head("x", {"C": 1.0})
    with pytest.raises(PipelineError, match="unknown scale 'minmax'"):
        make_head("x", {"type": "logreg", "scale": "minmax"})


def test_a_head_can_read_the_intermediate_output_averaged_over_positions_and_a_wrong_layer_is_named():
    maps = np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(2, 3, 3, 4)
    np.testing.assert_allclose(heads.vectors(maps, "intermediate"), maps.mean(axis=(1, 2)))
    np.testing.assert_array_equal(heads.vectors(maps, "pooled"), maps)
    assert heads.vectors(None, "intermediate") is None
    assert heads.layer_of({"type": "logreg"}) == "pooled"
    with pytest.raises(PipelineError, match="unknown layer 'block3'; use one of pooled, intermediate"):
        make_head("x", {"type": "logreg", "layer": "block3"})


def test_a_features_file_is_read_as_each_layer_gives_its_vectors_views_included(tmp_path, monkeypatch):
    monkeypatch.setattr(heads, "CHUNK", 2)  # the maps are reduced from the file in two chunks
    rng = np.random.default_rng(0)
    pooled, maps = rng.normal(size=(3, 5)), rng.normal(size=(3, 2, 2, 4))
    arrays = {"features": pooled, INTERMEDIATE: maps, "features_flipped": pooled[:, ::-1],
              f"{INTERMEDIATE}_flipped": maps[:, ::-1]}
    store.write(tmp_path / "test.h5", [arrays], [0, 1, 0], ["a.png", "b.png", "c.png"], ["x", "y"], meta={},
                started=0.0)
    intermediate = heads.read_vectors(tmp_path / "test.h5", "intermediate")
    np.testing.assert_allclose(intermediate.X, maps.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(intermediate.flipped, maps[:, ::-1].mean(axis=(1, 2)), rtol=1e-6)
    assert intermediate.augmented is None and intermediate.paths == ["a.png", "b.png", "c.png"]
    np.testing.assert_allclose(heads.read_vectors(tmp_path / "test.h5", "pooled").X, pooled, rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_class_weight_balanced_raises_the_small_classs_recall(kind):
    """9 to 1 classes that overlap: unweighted heads give most of the small class to the large one."""
    X, y = make_classification(n_samples=800, n_features=20, n_informative=4, weights=[0.9, 0.1],
                               n_clusters_per_class=1, class_sep=0.8, random_state=0)
    (X_train, X_test), (y_train, y_test) = np.split(X, 2), np.split(y, 2)
    assert np.bincount(y_train).tolist() == [363, 37]
    recall, balanced = {}, {}
    for weights in (None, "balanced"):
        model = make_head(kind, {"type": kind, "class_weight": weights, **FAST.get(kind, {})}).fit(X_train, y_train)
        assert model[-1].get_params()["class_weight"] == weights
        predicted = model.predict(X_test)
        recall[weights] = recall_score(y_test, predicted, pos_label=1)
        balanced[weights] = balanced_accuracy_score(y_test, predicted)
    assert recall["balanced"] >= recall[None] + 0.2, recall
    assert balanced["balanced"] > balanced[None], balanced


def test_the_dense_head_weights_classes_by_its_fit_rows_and_refuses_an_unknown_setting(monkeypatch):
    X, y = blobs(2)
    y = np.where(np.arange(len(y)) < 30, 1, 0)  # 90 of class 0, 30 of class 1
    seen = {}

    def recording_train(model, data, validation, *args, class_weight=None, **kwargs):
        seen["fit_labels"], seen["class_weight"] = data.y, class_weight
        return real_train(model, data, validation, *args, class_weight=class_weight, **kwargs)

    real_train = networks.train
    monkeypatch.setattr(networks, "train", recording_train)
    DenseHead(units=4, epochs=1, class_weight="balanced").fit(X, np.where(y == 1, "cat", "dog"))
    counts = np.bincount(seen["fit_labels"])  # the rows left after early stopping's share
    assert seen["class_weight"] == pytest.approx({0: counts.sum() / (2 * counts[0]), 1: counts.sum() / (2 * counts[1])})
    DenseHead(units=4, epochs=1).fit(X, y)
    assert seen["class_weight"] is None  # the default: unweighted
    with pytest.raises(PipelineError, match="class_weight is 'balance': use balanced"):
        DenseHead(epochs=1, class_weight="balance").fit(X, y)


def test_a_fitted_dense_head_pickles_without_its_optimizer_and_loads_where_the_pipeline_is_not_imported(tmp_path):
    """Trained with networks.FusedAdam, a class Keras finds only once this package has registered it; kept
    uncompiled, its file holds the weights alone and unpickles in a process that imported nothing of it."""
    X, y = blobs(2)
    head = DenseHead(units=8, epochs=2).fit(X, y)
    assert not head.model_.compiled
    joblib.dump((head, X), tmp_path / "head.joblib")
    loaded = subprocess.run([sys.executable, "-c", (
        "import sys, joblib; head, X = joblib.load(sys.argv[1]); "
        "assert 'pipeline.modeling.networks' not in sys.modules; joblib.dump(head.model_.get_weights(), sys.argv[1])"),
        tmp_path / "head.joblib"], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    for saved, trained in zip(joblib.load(tmp_path / "head.joblib"), head.model_.get_weights()):
        np.testing.assert_array_equal(saved, trained)


def test_a_dense_heads_fits_leave_no_copy_of_their_data_behind():
    """model.fit on arrays left TensorFlow holding each fit's data: 0.8 GB per CV fold at 4,000 photos."""
    X = np.random.default_rng(0).normal(size=(25_000, 1_000)).astype(np.float32)  # 100 MB
    y = (X[:, 0] > 0).astype(int)

    def resident():
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    DenseHead(units=4, epochs=1, batch_size=256).fit(X, y)  # TensorFlow's own start-up allocations, first
    before = resident()
    for _ in range(2):
        DenseHead(units=4, epochs=1, batch_size=256).fit(X, y)
    assert resident() - before < 0.3 * X.nbytes, f"{(resident() - before) / 1e6:.0f} MB more after two fits"
