"""The SVM heads: scikit-learn's SVC on one precomputed kernel matrix, with Platt-scaled probabilities.

SVC inside CalibratedClassifierCV, the formulation this replaces, made six libsvm fits per CV fold,
each computing the long feature vectors' dot products one pair of rows at a time, on one core, too slow
for a few thousand images (README, Speed). Here the kernel is one BLAS product per fit, which every
libsvm fit reads.
"""
import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data

# Kernel rows computed per prediction batch: a batch's kernel matrix spans every training row.
PREDICT_BATCH = 1024


class KernelSVM(ClassifierMixin, BaseEstimator):
    """scikit-learn's SVC with Platt-scaled probabilities, fitted on one kernel matrix per fit.

    What SVC inside CalibratedClassifierCV computes (the SVC's decisions, a sigmoid per class
    fitted on out-of-fold decisions), at a small fraction of its cost on wide rows: the kernel
    between every pair of training rows is one BLAS matrix product, and the six libsvm fits
    (five calibration folds and the final one) read it instead of each computing 8,192-long dot
    products one at a time. Calibration folds hold whole groups (`groups` in fit: an image's
    augmented copies and duplicates), so a sigmoid is never fitted on a decision about a twin
    of a row the SVC trained on. Keeps the final SVC's support vectors for prediction. Its fit asks
    for `groups` and `gram` through scikit-learn's metadata routing (pipeline.modeling.evaluation.fit
    passes them): `gram`, the rows' dot products already computed, spares the one matrix product too.
    `fit_gram` and `proba_of_products` fit and score from dot products alone, without the rows: CV's folds
    slice one product over every row (evaluation.shared_gram) instead of each computing its own and copying
    its rows.

    `class_weight` ('balanced', {label: weight}, or None) weights the classes in the SVC's fits
    and in the sigmoids' too: an unweighted sigmoid would move the threshold back to where the
    class frequencies put it, undoing what the weights did (CalibratedClassifierCV(SVC(class_weight=...))
    did just that).
    """

    __metadata_request__fit = {"groups": True, "gram": True}

    def __init__(self, kernel="rbf", C=1.0, gamma="scale", class_weight=None, tol=1e-3,
                 calibration_folds=5, random_state=0):
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.class_weight = class_weight
        self.tol = tol
        self.calibration_folds = calibration_folds
        self.random_state = random_state

    def fit(self, X, y, groups=None, gram=None):
        """Fit the SVC on every row and a sigmoid per class on out-of-fold decisions; `groups` as in DenseHead.fit.

        `gram`: X @ X.T (of X as given here, after a pipeline's scaler), or None to compute it.
        """
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        if gram is None:
            gram = X @ X.T  # BLAS's syrk: half a product's work
        elif np.shape(gram) != (len(X), len(X)):
            raise ValueError(f"gram must be X @ X.T, of shape {(len(X), len(X))}, not {np.shape(gram)}")
        self.fit_gram(gram, y, groups, X.sum(axis=1, dtype=np.float64), X.shape[1])
        self.support_vectors_ = X[self.svc_.support_]
        return self

    def fit_gram(self, gram, y, groups, row_sums, n_features):
        """Fit from the rows' dot products alone (`gram`, rows x rows), each row's sum and their `n_features`
        (gamma 'scale' reads the rows' variance from them). Keeps no support vectors: it predicts from dot
        products too (proba_of_products), as CV's folds do (pipeline.modeling.evaluation.cross_validate)."""
        y = column_or_1d(y)
        check_classification_targets(y)
        groups = np.arange(len(y)) if groups is None else column_or_1d(groups)
        check_consistent_length(y, groups, gram, row_sums)
        if self.kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel must be 'linear' or 'rbf', not {self.kernel!r}")
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("KernelSVM needs two classes or more to learn from; y has one class")
        squares = np.diagonal(gram)
        self.gamma_ = self._gamma(squares.sum(dtype=np.float64), np.sum(row_sums, dtype=np.float64),
                                  len(y) * n_features, n_features)
        # {class index: weight}, as every fit here sees the classes; None: unweighted
        self.class_weight_ = None if self.class_weight is None else dict(enumerate(
            compute_class_weight(self.class_weight, classes=self.classes_, y=y)))
        kernel = self._kernel_of(gram, squares, squares)
        decisions = self._out_of_fold_decisions(kernel, y_index, groups)
        columns = decisions[:, None] if decisions.ndim == 1 else decisions
        positives = [y_index == 1] if decisions.ndim == 1 else [y_index == k for k in range(len(self.classes_))]
        weights = None if self.class_weight_ is None else np.array(list(self.class_weight_.values()))[y_index]
        self.sigmoids_ = np.array([platt_sigmoid(column, positive, weights)
                                   for column, positive in zip(columns.T, positives)])
        self.svc_ = self._svc().fit(kernel, y_index)
        self.support_squares_ = np.asarray(squares[self.svc_.support_], dtype=np.float64)
        return self

    def _gamma(self, sum_of_squares, total, values, n_features):
        """The rbf kernel's gamma from the sum of the rows' squares and of the rows (`total`), `values` numbers."""
        if self.kernel == "linear":
            return None
        if self.gamma == "scale":  # as SVC's: 1 / (features * variance of X), here without a float64 copy of X
            variance = sum_of_squares / values - (total / values) ** 2
            return 1.0 / (n_features * variance) if variance > 0 else 1.0
        if self.gamma == "auto":
            return 1.0 / n_features
        if isinstance(self.gamma, str) or not self.gamma > 0:
            raise ValueError(f"gamma must be 'scale', 'auto' or a number above 0, not {self.gamma!r}")
        return float(self.gamma)

    def _kernel_of(self, dots, squares_a, squares_b):
        """The kernel matrix from the rows' dot products and each row's squared length, in one new float64 array.

        In place after the copy: the rbf kernel's temporaries were each as large as the kernel (4,000 photos:
        330 MB apiece)."""
        kernel = np.array(dots, dtype=np.float64)
        if self.kernel == "linear":
            return kernel
        kernel *= -2  # the squared distance |a|^2 + |b|^2 - 2 a.b, never below 0 (rounding)
        kernel += np.asarray(squares_a, dtype=np.float64)[:, None]
        kernel += np.asarray(squares_b, dtype=np.float64)
        np.maximum(kernel, 0, out=kernel)
        kernel *= -self.gamma_
        return np.exp(kernel, out=kernel)

    def _svc(self):
        return SVC(kernel="precomputed", C=self.C, class_weight=self.class_weight_, tol=self.tol)

    def _out_of_fold_decisions(self, kernel, y, groups):
        """SVC decisions for every row from folds of whole groups that did not train on it."""
        decisions = np.zeros(len(y) if len(self.classes_) == 2 else (len(y), len(self.classes_)))
        for train, test in group_folds(y, groups, self.calibration_folds, self.random_state):
            svc = self._svc().fit(kernel[np.ix_(train, train)], y[train])
            decisions[test] = svc.decision_function(kernel[np.ix_(test, train)])
        return decisions

    def _decisions(self, X):
        """The final SVC's decision_function: one column (two classes) or one per class (one-vs-rest votes).

        Not public: a classifier's decision_function must agree with its predict, and predict here
        is the calibrated probabilities' argmax, whose threshold the sigmoids move."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        vectors = self.support_vectors_
        return self._decisions_of(lambda rows: (X[rows] @ vectors.T, np.einsum("ij,ij->i", X[rows], X[rows])),
                                  len(X), np.einsum("ij,ij->i", vectors, vectors))

    def _decisions_of(self, products_of, n_rows, support_squares):
        """Decisions for `n_rows` rows, PREDICT_BATCH at a time: products_of(a slice of them) gives their dot
        products with the support vectors and their squared lengths."""
        batches = []
        for start in range(0, n_rows, PREDICT_BATCH):
            products, squares = products_of(slice(start, start + PREDICT_BATCH))
            # libsvm reads a precomputed kernel's columns by training row; only support vectors' are used.
            kernel = np.zeros((len(products), self.svc_.shape_fit_[0]))
            kernel[:, self.svc_.support_] = self._kernel_of(products, squares, support_squares)
            batches.append(self.svc_.decision_function(kernel))
        return np.concatenate(batches)

    def proba_of_products(self, products, squares):
        """predict_proba of rows given by their dot products with the training rows (rows x training rows, in
        fit's order) and their squared lengths, for a fit_gram fit, which keeps no rows."""
        check_is_fitted(self, "support_squares_")
        support = self.svc_.support_
        return self._proba(self._decisions_of(lambda rows: (products[rows][:, support], squares[rows]),
                                              len(squares), self.support_squares_))

    def predict_proba(self, X):
        return self._proba(self._decisions(X))

    def _proba(self, decisions):
        """Platt's sigmoids of the decisions, normalised over the classes."""
        if decisions.ndim == 1:
            positive = expit(-(self.sigmoids_[0, 0] * decisions + self.sigmoids_[0, 1]))
            return np.column_stack([1 - positive, positive])
        proba = expit(-(self.sigmoids_[:, 0] * decisions + self.sigmoids_[:, 1]))
        total = proba.sum(axis=1, keepdims=True)
        # as CalibratedClassifierCV: rows whose sigmoids are all 0 get equal probabilities
        return np.divide(proba, total, out=np.full_like(proba, 1 / proba.shape[1]), where=total > 0)

    def predict(self, X):
        proba = self.predict_proba(X)  # first: it checks that the model is fitted
        return self.classes_[proba.argmax(axis=1)]


def group_folds(y, groups, folds, seed):
    """(train rows, test rows) of scikit-learn's StratifiedGroupKFold: whole groups, the classes' shares kept.

    Fewer folds where a class has fewer than `folds` groups, so that every class is on both sides.
    """
    folds = min(folds, *(len(np.unique(groups[y == label])) for label in np.unique(y)))
    if folds < 2:
        raise ValueError("KernelSVM needs two images of each class or more, to calibrate its probabilities")
    return StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(y, y, groups)


def platt_sigmoid(decisions, positive, weights=None):
    """(a, b) of Platt's P(positive | decision f) = 1 / (1 + exp(a f + b)), fitted with his smoothed targets.

    `weights` (one per row) weight the rows' cross-entropy and the counts in the targets, as scikit-learn's.
    """
    weights = np.ones(len(positive)) if weights is None else np.asarray(weights, dtype=np.float64)
    n_positive = weights[positive].sum()
    n_negative = weights.sum() - n_positive
    target = np.where(positive, (n_positive + 1) / (n_positive + 2), 1 / (n_negative + 2))

    def loss(ab):
        z = ab[0] * decisions + ab[1]
        gradient = weights * (expit(z) - (1 - target))  # of log(1 + e^z) - (1 - target) z, the cross-entropy
        return (np.sum(weights * (np.logaddexp(0, z) - (1 - target) * z)),
                np.array([gradient @ decisions, gradient.sum()]))

    start = np.array([0.0, np.log((n_negative + 1) / (n_positive + 1))])
    return minimize(loss, start, jac=True, method="L-BFGS-B").x
