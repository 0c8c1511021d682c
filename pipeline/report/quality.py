"""Checks of the training images themselves: labels that cross-validation doubts, images unlike the rest.

Both only point at images for a person to look at; nothing is dropped or changed.
"""
import h5py
import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.outlier import OutOfDistribution

from pipeline.modeling.heads import LAYERS, vectors

NEIGHBOURS = 10  # cleanlab's default


def doubted_labels(out_of_fold, classes):
    """The training images whose label cleanlab's confident learning doubts, given out-of-fold probabilities.

    `out_of_fold` has path, actual and a p_<class> column per class. Doubted are the images the
    model confidently puts in another class, beyond the errors its per-class confidence thresholds
    expect: mislabelled or out-of-scope images, and some that are merely hard.
    """
    proba = out_of_fold[[f"p_{c}" for c in classes]].to_numpy()
    labels = out_of_fold["actual"].map(classes.index).to_numpy()
    doubted = find_label_issues(labels, proba, n_jobs=1)
    return out_of_fold[doubted].assign(predicted=np.asarray(classes)[proba[doubted].argmax(axis=1)],
                                       probability=proba[doubted].max(axis=1))[
        ["path", "actual", "predicted", "probability"]]


def typicality(features_file):
    """(paths, scores): how like its nearest neighbours each image of a split is, 0-1, lower is odder.

    cleanlab's OutOfDistribution (mean cosine distance to the nearest neighbours) on the backbone's
    intermediate output averaged over positions: mid-level appearance, where a placeholder graphic
    among photos stands out, as it did not in the pooled features (README, "Training images to look at").
    """
    with h5py.File(features_file, "r") as h5:
        pooled = vectors(h5[LAYERS["intermediate"][0]], "intermediate")
        paths = [p.decode() for p in h5["paths"][:]]
    neighbours = min(NEIGHBOURS, len(pooled) - 1)
    scores = OutOfDistribution(params={"k": neighbours}).fit_score(features=pooled, verbose=False)
    return paths, scores
