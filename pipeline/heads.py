"""Classifier heads for bottleneck features, all scikit-learn estimators.

A head in params.yaml is a name mapped to its `type`, an optional `scale`
(standard, l2 or none, applied inside the pipeline so each CV fold fits its own)
and the estimator's own settings. Adding a type is one class and one HEADS entry.
"""
import difflib

import keras
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import SVC

from pipeline import PipelineError


class DenseHead(ClassifierMixin, BaseEstimator):
    """Dense -> Dropout -> sigmoid/softmax, early-stopped on a held-out part of its training data."""

    def __init__(self, units=256, dropout=0.5, learning_rate=1e-3, epochs=100, batch_size=32,
                 patience=5, validation_fraction=0.15, random_state=0):
        self.units = units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X, y):
        self.classes_, y_index = np.unique(y, return_inverse=True)
        keras.utils.set_random_seed(self.random_state)
        X_fit, X_stop, y_fit, y_stop = train_test_split(
            X, y_index, test_size=self.validation_fraction, random_state=self.random_state,
            stratify=y_index if np.bincount(y_index).min() >= 2 else None,
        )
        self.model_ = self._build(X.shape[1], len(self.classes_))
        stop = keras.callbacks.EarlyStopping(patience=self.patience, restore_best_weights=True)
        history = self.model_.fit(
            X_fit, y_fit, validation_data=(X_stop, y_stop), epochs=self.epochs,
            batch_size=self.batch_size, callbacks=[stop], verbose=0,
        )
        self.history_ = history.history
        return self

    def _build(self, n_features, n_classes):
        binary = n_classes == 2
        model = keras.Sequential([
            keras.Input((n_features,)),
            keras.layers.Dense(self.units, activation="relu"),
            keras.layers.Dropout(self.dropout),
            keras.layers.Dense(1 if binary else n_classes, activation="sigmoid" if binary else "softmax"),
        ])
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        )
        return model

    def predict_proba(self, X):
        proba = self.model_.predict(np.asarray(X, dtype=np.float32), verbose=0).astype(np.float64)
        if proba.shape[1] == 1:
            proba = np.hstack([1 - proba, proba])
        return proba / proba.sum(axis=1, keepdims=True)  # float32 softmax sums to 1 +- 1e-7

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


# type -> (estimator class, defaults that differ from the class's own)
HEADS = {
    "dense": (DenseHead, {}),
    "logreg": (LogisticRegression, {"max_iter": 5000}),
    "linear_svm": (SVC, {"kernel": "linear"}),
    "rbf_svm": (SVC, {"kernel": "rbf"}),
}
SCALERS = {"standard": StandardScaler, "l2": Normalizer, "none": None}


def make_head(name, spec, seed=0):
    """The scikit-learn pipeline (scaler, estimator) that params.yaml's heads.<name> describes."""
    where = f"params.yaml: heads.{name}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise PipelineError(f"{where} needs a type: one of {', '.join(HEADS)}")
    settings = dict(spec)
    kind, scale = settings.pop("type"), settings.pop("scale", "standard")
    if kind not in HEADS:
        raise PipelineError(f"{where}: unknown type {kind!r}; known types: {', '.join(HEADS)}")
    if scale not in SCALERS:
        raise PipelineError(f"{where}: unknown scale {scale!r}; use one of {', '.join(SCALERS)}")
    estimator_class, defaults = HEADS[kind]
    known = estimator_class().get_params()
    for key in settings:
        if key not in known:
            by_lower = {k.lower(): k for k in known}
            close = difflib.get_close_matches(key.lower(), list(by_lower), n=1)
            hint = f"did you mean {by_lower[close[0]]!r}?" if close else f"known: {', '.join(sorted(known))}"
            raise PipelineError(f"{where}: {kind} has no setting {key!r}; {hint}")
    seeded = {"random_state": seed} if "random_state" in known else {}
    estimator = estimator_class(**{**defaults, **seeded, **settings})
    if not hasattr(estimator, "predict_proba"):
        # Platt scaling fitted on internal folds gives SVMs the probabilities that ROC AUC,
        # log loss and predict's CSV need (scikit-learn's replacement for SVC(probability=True)).
        estimator = CalibratedClassifierCV(estimator, ensemble=False)
    scaler = SCALERS[scale]
    return make_pipeline(scaler(), estimator) if scaler else make_pipeline(estimator)
