"""Score any head the same way: stratified k-fold CV on train, then a refit scored on held-out data."""
import time

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from pipeline import PipelineError

METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")


def scores(y_true, proba):
    """All METRICS for integer labels and an (n, n_classes) probability matrix."""
    labels = np.arange(proba.shape[1])
    y_pred = proba.argmax(axis=1)
    return {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "balanced_accuracy": metrics.balanced_accuracy_score(y_true, y_pred),
        "f1_macro": metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "roc_auc": roc_auc(y_true, proba),
        "log_loss": metrics.log_loss(y_true, proba, labels=labels),
    }


def roc_auc(y_true, proba):
    if len(np.unique(y_true)) < proba.shape[1]:
        return float("nan")  # undefined when a class is absent from the scored images
    if proba.shape[1] == 2:
        return metrics.roc_auc_score(y_true, proba[:, 1])
    return metrics.roc_auc_score(y_true, proba, multi_class="ovr")


def predict_proba(model, X, n_classes):
    """Probabilities with one column per class, also for a model that saw only some classes."""
    proba = np.zeros((len(X), n_classes))
    proba[:, model.classes_] = model.predict_proba(X)
    # float32 features give float32 probabilities, whose sums miss 1 by more than log_loss allows.
    return proba / proba.sum(axis=1, keepdims=True)


def fit(model, X, y):
    start = time.perf_counter()
    try:
        fitted = clone(model).fit(X, y)
    except ValueError as exc:  # scikit-learn's way of rejecting a setting's value
        raise PipelineError(f"fitting failed ({exc}): check the head's settings in params.yaml") from exc
    return fitted, time.perf_counter() - start


def cross_validate(model, X, y, n_classes, folds, seed):
    """Out-of-fold probabilities and per-fold scores of stratified k-fold CV."""
    smallest = np.bincount(y, minlength=n_classes).min()
    if smallest < folds:
        raise PipelineError(
            f"evaluate.folds is {folds} but the smallest class has only "
            f"{smallest} training images: lower evaluate.folds"
        )
    out_of_fold = np.zeros((len(y), n_classes))
    per_fold = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        fitted, _ = fit(model, X[train], y[train])
        out_of_fold[test] = predict_proba(fitted, X[test], n_classes)
        per_fold.append(scores(y[test], out_of_fold[test]))
    return out_of_fold, pd.DataFrame(per_fold)


def evaluate(model, train, heldout, folds, seed):
    """Return (fitted model, metrics dict, predictions DataFrame) for one head.

    `train` and `heldout` are pipeline.features.Features; `heldout` may be None, and then
    the predictions are CV's out-of-fold ones.
    """
    n_classes = len(train.classes)
    start = time.perf_counter()
    out_of_fold, per_fold = cross_validate(model, train.X, train.y, n_classes, folds, seed)
    cv_seconds = time.perf_counter() - start
    fitted, fit_seconds = fit(model, train.X, train.y)
    result = {
        "cv": {name: {"mean": per_fold[name].mean(), "std": per_fold[name].std(ddof=1)}
               for name in METRICS},
        "cv_seconds": cv_seconds,
        "fit_seconds": fit_seconds,
    }
    if heldout is None:
        scored, proba, split = train, out_of_fold, "cv"
    else:
        scored, split = heldout, heldout.meta["split"]
        proba = predict_proba(fitted, heldout.X, n_classes)
        result["heldout"] = {"split": split, "images": len(heldout.y), **scores(heldout.y, proba)}
    classes = np.asarray(train.classes)
    predictions = pd.DataFrame({
        "path": scored.paths,
        "split": split,
        "actual": classes[scored.y],
        "predicted": classes[proba.argmax(axis=1)],
        "probability": proba.max(axis=1),
    })
    return fitted, to_builtin(result), predictions


def to_builtin(value):
    """numpy scalars to plain floats, NaN to None: JSON that DVC and people can read."""
    if isinstance(value, dict):
        return {k: to_builtin(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else round(float(value), 6)
    return value
