"""Classifier heads for bottleneck features, all scikit-learn estimators.

A head in params.yaml is a name mapped to its `type`, an optional `scale`
(standard, l2 or none, applied inside the pipeline so each CV fold fits its own), an
optional `layer` (which cached backbone output it reads) and the estimator's own settings.
Adding a type is one class and one HEADS entry.
"""
from dataclasses import replace

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data

from pipeline import PipelineError
from pipeline.config import check_settings
from pipeline.features import store
from pipeline.features.backbone import INTERMEDIATE
from pipeline.modeling.kernel_svm import KernelSVM


class DenseHead(ClassifierMixin, BaseEstimator):
    """Dense -> Dropout -> sigmoid/softmax, early-stopped on a held-out part of its training data.

    `class_weight`: 'balanced' weights each class's rows by n_rows / (n_classes * the class's rows), in
    training and in the early-stopping loss, so a small class counts as much as a large one; a
    {label: weight} mapping gives the weights; None (the default) leaves every row at weight 1.
    """

    parallel_folds = False  # it seeds Keras's global random state: CV folds fit one at a time (evaluation.fold_jobs)
    __metadata_request__fit = {"groups": True, "curves": True}  # routed to fit by scikit-learn (evaluation.fit)

    def __init__(self, units=256, dropout=0.5, learning_rate=1e-3, epochs=100, batch_size=32,
                 patience=5, validation_fraction=0.15, class_weight=None, random_state=0):
        self.units = units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state

    def fit(self, X, y, groups=None, curves=None):
        """Fit on the rows of X; early stopping watches `validation_fraction` of the groups.

        `groups` labels each row's image (its augmented copies and duplicates share the label),
        so no image is both trained on and watched; None makes each row its own group. The
        watched groups are kept in `stopping_groups_`, for later stages to leave out too.
        `curves`: a pipeline.modeling.live.Folder for the learning curves (networks.train).
        """
        from pipeline.modeling import networks  # Keras loads with the first dense head, not with this module
        from pipeline.quiet_keras import keras

        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        if groups is not None:
            groups = column_or_1d(groups)
            check_consistent_length(y, groups)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError("DenseHead needs two classes or more to learn from; y has one class")
        keras.utils.set_random_seed(self.random_state)
        fit, stop = networks.set_aside_stopping_rows(y_index, groups, self.validation_fraction, self.random_state)
        self.stopping_groups_ = np.unique(stop if groups is None else groups[stop])
        weights = networks.class_weights(self.class_weight, self.classes_, y[fit])
        self.model_ = networks.compile_classifier(keras.Sequential([
            keras.Input((X.shape[1],)),
            keras.layers.Dense(self.units, activation="relu"),
            keras.layers.Dropout(self.dropout),
            networks.output_layer(n_classes),
        ]), n_classes, networks.FusedAdam(self.learning_rate))
        self.history_ = networks.train(
            self.model_, networks.Views(X, y_index, rows=fit), networks.Views(X, y_index, rows=stop),
            self.epochs, self.patience, self.batch_size, class_weight=weights, curves=curves, seed=self.random_state,
        )
        self.model_ = networks.uncompiled_copy(self.model_)  # saved, it loads wherever Keras does (FusedAdam)
        return self

    def predict_proba(self, X):
        from pipeline.modeling import networks

        check_is_fitted(self)
        # float32 rows stay float32 here: keras_proba turns them to float64 a batch at a time, not all at once
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return networks.keras_proba(networks.uncompiled_copy(self.model_, "float64"), X, dtype=np.float64)

    def predict(self, X):
        proba = self.predict_proba(X)  # first: it checks that the head is fitted
        return self.classes_[proba.argmax(axis=1)]


class StandardScalerInChunks(StandardScaler):
    """scikit-learn's StandardScaler, its mean and variance gathered CHUNK rows at a time (partial_fit).

    Its one-pass fit holds every row's deviation from the mean in float64 at once: twice the size of the
    float32 rows, the largest allocation of a whole logistic-regression fit (tests/test_heads.py).
    """

    def fit(self, X, y=None, sample_weight=None):
        self._reset()  # as StandardScaler.fit does: a second fit starts afresh
        for start in range(0, len(X), CHUNK):
            rows = slice(start, start + CHUNK)
            self.partial_fit(X[rows], y, None if sample_weight is None else sample_weight[rows])
        return self


# type -> (estimator class, defaults that differ from the class's own)
HEADS = {
    "dense": (DenseHead, {}),
    "logreg": (LogisticRegression, {"max_iter": 5000}),
    "linear_svm": (KernelSVM, {"kernel": "linear"}),
    "rbf_svm": (KernelSVM, {"kernel": "rbf"}),
}
SCALERS = {"standard": StandardScalerInChunks, "l2": Normalizer, "none": None}
# layer -> (array in the features files, how it becomes one vector per image)
LAYERS = {
    "pooled": ("features", None),  # the backbone's last feature map, pooled (backbone.pooling)
    # The intermediate layer's output (pipeline.features.backbone) averaged over positions: mid-level
    # features, more general than the last layer's, which can serve images far from ImageNet's photos better.
    "intermediate": (INTERMEDIATE, lambda maps: maps.mean(axis=(-3, -2))),
}
DEFAULT_LAYER = "pooled"
CHUNK = 256  # images whose maps are reduced at once; rows a standard scaler fits at once


def layer_of(spec):
    """The `layer` a head reads: DEFAULT_LAYER unless params.yaml says otherwise."""
    return spec.get("layer", DEFAULT_LAYER) if isinstance(spec, dict) else DEFAULT_LAYER


def vectors(arrays, layer):
    """One vector per image (and per view) from the cached arrays of `layer`, an array or an h5py dataset.

    A map is reduced CHUNK images at a time, so a split's maps are never all in memory, only their vectors.
    """
    _, reduce = LAYERS[layer]
    if arrays is None:
        return None
    if reduce is None:
        return arrays[:]
    return np.concatenate([reduce(arrays[start:start + CHUNK]) for start in range(0, len(arrays), CHUNK)])


def read_vectors(path, layer):
    """A split's features file (pipeline.features.store.Features) as a head of `layer` reads it: one vector per
    image and view."""
    with store.opened(path, LAYERS[layer][0]) as cached:
        return replace(cached, X=vectors(cached.X, layer), augmented=vectors(cached.augmented, layer),
                       flipped=vectors(cached.flipped, layer))


def make_head(name, spec, seed=0):
    """The scikit-learn pipeline (scaler, estimator) that params.yaml's heads.<name> describes."""
    where = f"params.yaml: heads.{name}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise PipelineError(f"{where} needs a type: one of {', '.join(HEADS)}")
    settings = dict(spec)
    kind, scale, layer = settings.pop("type"), settings.pop("scale", "standard"), settings.pop("layer", DEFAULT_LAYER)
    if layer not in LAYERS:
        raise PipelineError(f"{where}: unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
    if kind not in HEADS:
        raise PipelineError(f"{where}: unknown type {kind!r}; known types: {', '.join(HEADS)}")
    if scale not in SCALERS:
        raise PipelineError(f"{where}: unknown scale {scale!r}; use one of {', '.join(SCALERS)}")
    estimator_class, defaults = HEADS[kind]
    known = estimator_class().get_params()
    check_settings(f"{where}: {kind}", settings, known)
    seeded = {"random_state": seed} if "random_state" in known else {}
    estimator = estimator_class(**{**defaults, **seeded, **settings})
    scaler = SCALERS[scale]
    return make_pipeline(scaler(), estimator) if scaler else make_pipeline(estimator)
