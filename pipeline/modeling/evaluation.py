"""Score every model the same way: k-fold CV on train (where affordable) and held-out scores.

Augmented copies of a training image, and copies of the image elsewhere in the training folders,
stay in its fold: a fold is never scored on a twin of an image it trained on, and it is scored on
the images themselves, not on their augmented copies.
"""
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, cpu_count, delayed
from sklearn import config_context, metrics
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer
from sklearn.utils.metadata_routing import get_routing_for_object
from threadpoolctl import threadpool_limits

from pipeline import PipelineError

METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")


def average_with_mirror(proba_of, X, mirrored=None):
    """proba_of(X), averaged with proba_of(mirrored) when the mirror images' inputs are given: test-time augmentation.

    The one place the flip is averaged: the held-out scores and `predict` both come through here.
    """
    views = [X] if mirrored is None else [X, mirrored]
    proba = np.mean([np.asarray(proba_of(view), dtype=np.float64) for view in views], axis=0)
    return proba / proba.sum(axis=1, keepdims=True)  # float32 outputs miss 1 by more than log_loss allows


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


def head_proba(head, X, n_classes, mirrored=None):
    """(len(X), n_classes) probabilities of a fitted scikit-learn head (labels 0..n_classes-1) from its vectors X.

    One column per class, also for a head that saw only some of them in its fold. With `mirrored` (the
    mirror images' vectors), averaged with theirs: test-time augmentation.
    """
    def columns(rows):
        proba = np.zeros((len(rows), n_classes))
        proba[:, head.classes_] = head.predict_proba(rows)
        return proba

    return average_with_mirror(columns, X, mirrored)


def fit(model, X, y, **metadata):
    """A fitted clone of `model`, and the seconds it took.

    Of `metadata` (one value per row, such as `groups`, or for the whole fit, such as `curves`), what the
    estimator's fit asks for reaches it, through a pipeline too: scikit-learn's metadata routing, where an
    estimator requests them (pipeline.modeling.heads.DenseHead, KernelSVM). None values are left out.
    """
    start = time.perf_counter()
    with config_context(enable_metadata_routing=True):  # in this thread only, as CV folds fit in threads
        fitted = clone(model)
        wanted = get_routing_for_object(fitted).consumes("fit", metadata)
        try:
            fitted.fit(X, y, **{name: value for name, value in metadata.items()
                                if name in wanted and value is not None})
        except ValueError as exc:  # scikit-learn's way of rejecting a setting's value
            raise PipelineError(f"fitting failed ({exc}): check the settings in params.yaml") from exc
    return fitted, time.perf_counter() - start


def fit_own_rows(model, rows, index, y, keep_rows=True, **metadata):
    """fit(model, rows[index], y, **metadata), its scalers transforming its own copy of the rows in place.

    scikit-learn's scalers copy by default: a fold's fit held its rows twice, at 4,000 photos 0.8 GB each
    (benchmarks/results.md, run 7). `index` None: every row, copied as the scaler would have, or with
    `keep_rows` False scaled where they are, for a caller that reads them no more.
    """
    copies = scaler_copies(model)
    if index is not None:
        own = rows[index]  # a copy already
    else:
        own = rows.copy() if copies and keep_rows else rows
    fitted, seconds = fit(clone(model).set_params(**dict.fromkeys(copies, False)), own, y, **metadata)
    return fitted.set_params(**copies), seconds  # as it was: what it predicts on later is not its own


def scaler_copies(model):
    """{parameter: value} of the `copy` settings of a pipeline's scalers (its steps before the estimator)."""
    if not isinstance(model, Pipeline):
        return {}
    params = model.get_params()
    return {f"{name}__copy": params[f"{name}__copy"] for name, _ in model.steps[:-1] if f"{name}__copy" in params}


def grouped_folds(y, n_views, folds, seed, groups=None):
    """Yield (train rows, test rows) of stratified k-fold CV over images with `n_views` rows each.

    Rows are image-major (row = image * n_views + view, view 0 the image itself). Images, not
    rows, are split, and images sharing a group (copies of one another) land in the same fold;
    a fold trains on every view of its images and tests on view 0 of the others.
    """
    smallest = np.bincount(y).min()
    if smallest < folds:
        raise PipelineError(
            f"evaluate.folds is {folds} but the smallest class has only "
            f"{smallest} training images: lower evaluate.folds"
        )
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(y)), y, groups):
        yield (train[:, None] * n_views + np.arange(n_views)).ravel(), test * n_views


def cross_validate(model, views, y, n_classes, folds, seed, groups=None, n_jobs=None, gram=None):
    """Out-of-fold probabilities, each image's fold, and per-fold scores; `views` is (images, views, features).

    `groups` (one per image) keeps copies of an image in one fold; without it every image is its own.
    `n_jobs` folds fit at once, in threads (None: fold_jobs(model)). `gram`: shared_gram(model, rows),
    where the caller has it already (computed here otherwise): where there is one, each fold fits on its
    slice and scores its held-out rows from their products in it, without a copy of its rows
    (gram_fold_proba).
    """
    n_images, n_views = views.shape[:2]
    groups = np.arange(n_images) if groups is None else np.asarray(groups)
    rows = views.reshape(n_images * n_views, -1)
    row_labels, row_groups = np.repeat(y, n_views), np.repeat(groups, n_views)
    splits = list(grouped_folds(y, n_views, folds, seed, groups))
    gram = shared_gram(model, rows) if gram is None else gram

    def fold(train, test):
        if gram is not None:
            return gram_fold_proba(model, gram, train, test, row_labels, row_groups, n_classes)
        fitted, _ = fit_own_rows(model, rows, train, row_labels[train], groups=row_groups[train])
        return head_proba(fitted, rows[test], n_classes)

    n_jobs = min(fold_jobs(model) if n_jobs is None else n_jobs, len(splits))
    # Threads share the rows; the cores' BLAS threads are divided between them rather than multiplied.
    with threadpool_limits(max(1, cpu_count() // n_jobs) if n_jobs > 1 else None, user_api="blas"):
        probabilities = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(fold)(*split) for split in splits)
    out_of_fold, fold_of = np.zeros((n_images, n_classes)), np.zeros(n_images, dtype=int)
    per_fold = []
    for number, ((_, test), proba) in enumerate(zip(splits, probabilities)):
        images = test // n_views
        out_of_fold[images], fold_of[images] = proba, number
        per_fold.append(scores(y[images], proba))
    return out_of_fold, fold_of, pd.DataFrame(per_fold)


@dataclass
class Gram:
    """The rows' dot products (`products`, rows x rows), each row's sum (`sums`) and length (`n_features`), the
    rows as an estimator sees them."""
    products: np.ndarray
    sums: np.ndarray
    n_features: int


def shared_gram(model, rows):
    """The Gram of `rows` as the estimator ending `model` sees them, for each of its fits on some of them to
    slice (its fit's `gram`, as pipeline.modeling.kernel_svm.KernelSVM asks for it); None where it does not ask,
    or where a fit's scaler learns from its own rows.

    Only a scaler that treats each row alone gives every fit the same rows: unit length (Normalizer's l2,
    whose dot products are the raw ones over the two lengths) or none. A standard scaler's mean and
    variance are its fold's, so each fold computes its own.
    """
    *scalers, final = [step for _, step in model.steps] if isinstance(model, Pipeline) else [model]
    if not get_routing_for_object(final).consumes("fit", ["gram"]) or any(
            not (isinstance(scaler, Normalizer) and scaler.norm == "l2") for scaler in scalers):
        return None
    products = rows @ rows.T  # BLAS's syrk: half a product's work
    sums = rows.sum(axis=1, dtype=np.float64)
    if scalers:
        lengths = np.sqrt(np.diagonal(products)).astype(products.dtype)
        lengths[lengths == 0] = 1  # as Normalizer: a row of zeros stays zeros
        products /= lengths[:, None]
        products /= lengths
        sums /= lengths
    return Gram(products, sums, rows.shape[1])


def gram_fold_proba(model, gram, train, test, labels, groups, n_classes):
    """A CV fold of a model whose estimator asks for a gram: fitted on the `train` rows' slice of `gram` (a Gram)
    and scoring the `test` rows from their products with them, so the fold never copies its rows; its
    probabilities, one column per class (as head_proba).

    The estimator's fit_gram and proba_of_products (KernelSVM's) take the rows' products as the pipeline's
    scalers leave them, which the Gram holds already.
    """
    estimator = clone(model[-1] if isinstance(model, Pipeline) else model)
    try:
        estimator.fit_gram(gram.products[np.ix_(train, train)], labels[train], groups[train], gram.sums[train],
                           n_features=gram.n_features)
    except ValueError as exc:  # as fit's
        raise PipelineError(f"fitting failed ({exc}): check the settings in params.yaml") from exc
    proba = np.zeros((len(test), n_classes))
    proba[:, estimator.classes_] = estimator.proba_of_products(gram.products[np.ix_(test, train)],
                                                              np.diagonal(gram.products)[test])
    return proba


def fold_jobs(model):
    """How many CV folds fit at once: one per core, or one for an estimator that says it must fit alone.

    libsvm, liblinear and much of numpy run on one core, so folds side by side use the others; a
    Keras head (parallel_folds = False) seeds Keras's one global random state, which threads would share.
    """
    final = model[-1] if isinstance(model, Pipeline) else model
    return cpu_count() if getattr(final, "parallel_folds", True) else 1


def cv_summary(per_fold):
    return {name: {"mean": per_fold[name].mean(), "std": per_fold[name].std(ddof=1)} for name in METRICS}


def scores_and_predictions(proba, scored, classes, split):
    """(METRICS of `split` as a dict, table of each image's path, labels and probabilities) for `proba`
    over the images of `scored` (a pipeline.features.store.Features)."""
    classes = np.asarray(classes)
    predictions = pd.DataFrame({
        "path": scored.paths,
        "split": split,
        "actual": classes[scored.y],
        "predicted": classes[proba.argmax(axis=1)],
        "probability": proba.max(axis=1),
    })
    return {"split": split, "images": len(scored.y), **scores(scored.y, proba)}, \
        pd.concat([predictions, probability_columns(proba, classes)], axis=1)


def probability_columns(proba, classes):
    """One `p_<class>` column per class: what the ensemble averages and the label check reads."""
    return pd.DataFrame(proba, columns=[f"p_{c}" for c in classes])


def class_probabilities(proba, scored, classes, fold):
    """path, actual label, CV fold and the class probabilities of every training image."""
    known = pd.DataFrame({"path": scored.paths, "actual": np.asarray(classes)[scored.y], "fold": fold})
    return pd.concat([known, probability_columns(proba, classes)], axis=1)


def evaluate(model, train, heldout, folds, seed, tta=False, groups=None, n_jobs=None, curves=None, keep_rows=True):
    """Return (fitted model, metrics dict, predictions, out-of-fold probabilities) for one head.

    `train` and `heldout` are pipeline.features.store.Features; `heldout` may be None, and then
    the predictions are CV's out-of-fold ones. Training uses every view (image and copies).
    `groups` (one per training image) keeps copies of an image together, in CV folds and in
    early stopping. The out-of-fold probabilities of every training image are a class_probabilities table.
    `n_jobs`: as in cross_validate. `curves` (a pipeline.modeling.live.Folder) gets the learning curves of
    the final fit, the one whose model is kept, where the model is a Keras one. `keep_rows` False: the final fit
    scales `train`'s rows in place, not a copy of them, for a caller that reads them no more (the train stage:
    at 4,000 photos the copy, 1.03 GB, made the SVMs' and the dense head's peak memory).
    """
    n_classes = len(train.classes)
    views = train.views()
    n_views, rows = views.shape[1], views.reshape(-1, views.shape[-1])
    groups = np.arange(len(train.y)) if groups is None else np.asarray(groups)
    start = time.perf_counter()
    gram = shared_gram(model, rows)  # once: every fold's fit and the final one slice it
    out_of_fold, fold_of, per_fold = cross_validate(model, views, train.y, n_classes, folds, seed, groups, n_jobs,
                                                    gram=gram)
    cv_seconds = time.perf_counter() - start
    fitted, fit_seconds = fit_own_rows(model, rows, None, np.repeat(train.y, n_views), keep_rows=keep_rows,
                                       groups=np.repeat(groups, n_views), curves=curves,
                                       gram=None if gram is None else gram.products)
    result = {"cv": cv_summary(per_fold), "cv_seconds": cv_seconds, "fit_seconds": fit_seconds,
              "training_views": int(views.shape[1])}
    if heldout is None:
        _, predictions = scores_and_predictions(out_of_fold, train, train.classes, "cv")  # scores: the CV ones
    else:
        flipped = heldout.flipped if tta else None
        proba = head_proba(fitted, heldout.X, n_classes, flipped)
        result["heldout"], predictions = scores_and_predictions(proba, heldout, train.classes, heldout.meta["split"])
        result["tta"] = flipped is not None
    return fitted, to_builtin(result), predictions, class_probabilities(out_of_fold, train, train.classes, fold_of)


def to_builtin(value):
    """numpy scalars to plain floats, NaN to None: JSON that DVC and people can read."""
    if isinstance(value, dict):
        return {k: to_builtin(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else round(float(value), 6)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value
