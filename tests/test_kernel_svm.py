import io

import joblib
import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV, _sigmoid_calibration
from sklearn.datasets import load_digits, make_classification
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from pipeline import PipelineError
from pipeline.modeling.heads import make_head
from pipeline.modeling.kernel_svm import KernelSVM, group_folds, platt_sigmoid


def digits(n_classes):
    """A small real problem: 8x8 handwritten digits of the first classes, standardised, split 2:1."""
    X, y = load_digits(n_class=n_classes, return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return train_test_split(X, y, test_size=1 / 3, stratify=y, random_state=0)


@pytest.mark.parametrize("kernel,C", [("linear", 1.0), ("rbf", 10.0)])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_kernel_svm_decides_as_svc_and_scores_as_the_calibrated_svc_it_replaces(kernel, C, n_classes):
    X_train, X_test, y_train, y_test = digits(n_classes)
    new = KernelSVM(kernel=kernel, C=C).fit(X_train, y_train)
    svc = SVC(kernel=kernel, C=C).fit(X_train, y_train)
    np.testing.assert_allclose(new._decisions(X_test), svc.decision_function(X_test), atol=1e-6)
    old = CalibratedClassifierCV(SVC(kernel=kernel, C=C), ensemble=False).fit(X_train, y_train)
    assert abs(new.score(X_test, y_test) - old.score(X_test, y_test)) <= 0.01
    proba = new.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert np.abs(proba - old.predict_proba(X_test)).mean() < 0.02


def test_platt_sigmoid_is_scikit_learns():
    rng = np.random.default_rng(0)
    positive = rng.random(200) < 0.3
    decisions = np.where(positive, 1.0, -1.0) + rng.normal(size=200)
    np.testing.assert_allclose(platt_sigmoid(decisions, positive), _sigmoid_calibration(decisions, positive),
                               rtol=1e-4)


def test_calibration_folds_keep_groups_whole_and_every_class_on_both_sides():
    y = np.repeat([0, 0, 1, 1, 1, 2], 8)  # 12 images of 4 rows: 4 of class 0, 6 of class 1, 2 of class 2
    groups = np.arange(48) // 4
    tested = []
    for train, test in group_folds(y, groups, folds=5, seed=0):
        assert not set(groups[train]) & set(groups[test])
        assert set(y[train]) == set(y[test]) == {0, 1, 2}
        tested += list(test)
    assert sorted(tested) == list(range(48))
    assert len(list(group_folds(y, groups, folds=5, seed=0))) == 2  # class 2 has two groups: two folds
    with pytest.raises(ValueError, match="two images of each class"):
        list(group_folds(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), folds=5, seed=0))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_grouped_calibration_is_scikit_learns_calibrated_svc_on_stratified_group_folds(n_classes):
    """The same folds as scikit-learn's StratifiedGroupKFold, and the same probabilities as its calibrated SVC
    on them (the library's formulation of what KernelSVM computes). The folds are given as a list: with
    ensemble=False, CalibratedClassifierCV does not hand groups to its splitter."""
    X_train, X_test, y_train, _ = digits(n_classes)
    rows, labels, images = np.repeat(X_train, 2, axis=0), np.repeat(y_train, 2), np.repeat(np.arange(len(y_train)), 2)
    rows[1::2] += np.random.default_rng(0).normal(scale=0.1, size=rows[1::2].shape)  # an "augmented" copy each
    folds = list(StratifiedGroupKFold(5, shuffle=True, random_state=3).split(rows, labels, images))
    assert [test.tolist() for _, test in group_folds(labels, images, 5, seed=3)] == [t.tolist() for _, t in folds]
    ours = KernelSVM(kernel="rbf", C=10.0, random_state=3).fit(rows, labels, groups=images)
    library = CalibratedClassifierCV(SVC(kernel="rbf", C=10.0), cv=folds, ensemble=False).fit(rows, labels)
    # Within libsvm's and the sigmoid fits' tolerances
    np.testing.assert_allclose(ours.predict_proba(X_test), library.predict_proba(X_test), atol=5e-3)


def test_kernel_svm_calibrates_on_whole_images_so_twins_do_not_make_it_overconfident():
    """Four identical rows per image: folds of rows would score decisions about rows the SVC trained on."""
    X_train, X_test, y_train, y_test = digits(2)
    noisy = np.where(np.random.default_rng(0).random(len(y_train)) < 0.2, 1 - y_train, y_train)  # 20% wrong labels
    rows, labels, images = np.repeat(X_train, 4, axis=0), np.repeat(noisy, 4), np.repeat(np.arange(len(noisy)), 4)
    by_image = KernelSVM(kernel="rbf", C=10.0).fit(rows, labels, groups=images)
    by_row = KernelSVM(kernel="rbf", C=10.0).fit(rows, labels)
    confidence = {name: model.predict_proba(X_test).max(axis=1).mean()
                  for name, model in [("by image", by_image), ("by row", by_row)]}
    assert confidence["by row"] > confidence["by image"] + 0.05, confidence


def test_a_pickled_kernel_svm_keeps_only_support_vectors_and_predicts_the_same():
    X_train, X_test, y_train, _ = digits(4)
    model = make_head("rbf_svm", {"type": "rbf_svm", "C": 10.0}).fit(X_train.astype(np.float32), y_train)
    svm = model[-1]
    assert svm.support_vectors_.dtype == np.float32 and len(svm.support_vectors_) < len(y_train)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict_proba(X_test), model.predict_proba(X_test))


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_a_given_gram_fits_the_model_its_own_product_fits(kernel):
    X_train, X_test, y_train, _ = digits(4)
    own = KernelSVM(kernel=kernel).fit(X_train, y_train)
    given = KernelSVM(kernel=kernel).fit(X_train, y_train, gram=X_train @ X_train.T)
    np.testing.assert_allclose(given.predict_proba(X_test), own.predict_proba(X_test), atol=1e-9)
    with pytest.raises(ValueError, match=r"gram must be X @ X.T, of shape \(40, 40\)"):
        KernelSVM().fit(X_train[:40], y_train[:40], gram=X_train @ X_train.T)


@pytest.mark.parametrize("settings", [{"kernel": "rbf"}, {"kernel": "linear"}, {"kernel": "rbf", "gamma": "auto"},
                                      {"kernel": "rbf", "class_weight": "balanced"}])
def test_a_fit_from_dot_products_alone_scores_what_a_fit_on_the_rows_scores(settings):
    X_train, X_test, y_train, _ = digits(4)
    rows = KernelSVM(**settings).fit(X_train, y_train)
    products = KernelSVM(**settings).fit_gram(X_train @ X_train.T, y_train, None, X_train.sum(axis=1),
                                              X_train.shape[1])
    assert products.gamma_ == pytest.approx(rows.gamma_, rel=1e-9) if rows.gamma_ else products.gamma_ is None
    assert not hasattr(products, "support_vectors_")
    np.testing.assert_allclose(products.proba_of_products(X_test @ X_train.T, np.einsum("ij,ij->i", X_test, X_test)),
                               rows.predict_proba(X_test), atol=1e-9)


def test_kernel_svm_settings_and_their_errors():
    model = make_head("rbf_svm", {"type": "rbf_svm", "C": 3.0, "gamma": 0.01}, seed=7)
    assert (model[-1].kernel, model[-1].C, model[-1].gamma, model[-1].random_state) == ("rbf", 3.0, 0.01, 7)
    assert make_head("linear_svm", {"type": "linear_svm"})[-1].kernel == "linear"
    with pytest.raises(PipelineError, match=r"rbf_svm has no setting 'gama'; did you mean 'gamma'\?"):
        make_head("rbf_svm", {"type": "rbf_svm", "gama": 0.1})
    X, y = make_classification(n_samples=60, n_features=10, random_state=0)
    for bad, message in [({"kernel": "poly"}, "kernel must be 'linear' or 'rbf'"), ({"gamma": -1.0}, "gamma must be")]:
        with pytest.raises(ValueError, match=message):
            KernelSVM(**bad).fit(X, y)


def test_weighted_platt_sigmoid_is_scikit_learns_with_sample_weights():
    rng = np.random.default_rng(1)
    positive = rng.random(200) < 0.2
    decisions = np.where(positive, 1.0, -1.0) + rng.normal(size=200)
    weights = np.where(positive, 2.5, 0.625)  # 'balanced' for 20% positives
    np.testing.assert_allclose(platt_sigmoid(decisions, positive, weights),
                               _sigmoid_calibration(decisions, positive, sample_weight=weights), rtol=1e-4)


def test_balanced_class_weight_weights_the_svc_and_its_sigmoids_so_the_small_class_is_found():
    """Digits 0 and 1 with 1 in 8 training images a 1, label noise making them overlap: calibration on the
    unweighted frequencies would move the threshold back towards the large class."""
    X_train, X_test, y_train, y_test = digits(2)
    rng = np.random.default_rng(0)
    keep = (y_train == 0) | (rng.random(len(y_train)) < 0.15)
    X_train, y_train = X_train[keep], y_train[keep]
    noisy = np.where(rng.random(len(y_train)) < 0.15, 1 - y_train, y_train)
    unweighted = KernelSVM(kernel="linear").fit(X_train, noisy)
    balanced = KernelSVM(kernel="linear", class_weight="balanced").fit(X_train, noisy)
    counts = np.bincount(noisy)
    assert balanced.class_weight_ == pytest.approx({0: len(noisy) / (2 * counts[0]), 1: len(noisy) / (2 * counts[1])})
    assert unweighted.class_weight_ is None
    assert balanced.svc_.class_weight_.tolist() == pytest.approx(list(balanced.class_weight_.values()))
    recall = {name: (model.predict(X_test[y_test == 1]) == 1).mean()
              for name, model in [("unweighted", unweighted), ("balanced", balanced)]}
    assert recall["balanced"] > recall["unweighted"] + 0.1, recall
