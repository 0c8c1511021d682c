"""Which row the report stands behind, decided before the held-out split is looked at.

Heads compete on their cross-validation accuracy over the training images. The `ensemble` row
averages the heads' probabilities; its CV comes exactly from their saved out-of-fold probabilities,
which share the same folds, so it competes on the same footing. Fine-tuning and the scratch CNN have
no CV, and they early-stop on the validation split (or on a slice of train), so no score they left
untouched is there to choose them by: they stay in the table for comparison.
"""
import numpy as np
import pandas as pd

from pipeline import PipelineError, paths
from pipeline.files import read_table
from pipeline.modeling import evaluation

ENSEMBLE = "ensemble"


def ensemble(heads, classes, members):
    """(metrics, predictions) of the average of the heads' probabilities, or None for fewer than two heads.

    `members` are the heads' metrics: the ensemble used TTA where they all did, and costs what they cost.
    """
    if len(heads) < 2:
        return None
    out_of_fold = mean_probabilities(heads, paths.out_of_fold_file, classes)
    cv_proba, y = probabilities(out_of_fold, classes)
    per_fold = pd.DataFrame([evaluation.scores(y[in_fold], cv_proba[in_fold])
                             for in_fold in (out_of_fold["fold"] == f for f in sorted(out_of_fold["fold"].unique()))])
    heldout = mean_probabilities(heads, paths.predictions_file, classes)
    proba, y_heldout = probabilities(heldout, classes)
    predictions = heldout.assign(predicted=np.asarray(classes)[proba.argmax(axis=1)], probability=proba.max(axis=1))
    metrics = {"type": ENSEMBLE, "approach": f"average of {len(heads)} heads", "members": list(heads),
               "cv": evaluation.cv_summary(per_fold), "tta": all(m.get("tta", False) for m in members),
               "fit_seconds": sum(m["fit_seconds"] + m.get("cv_seconds", 0) for m in members),
               "heldout": {"split": heldout["split"].iloc[0], "images": len(y_heldout),
                           **evaluation.scores(y_heldout, proba)}}
    return evaluation.to_builtin(metrics), predictions


def mean_probabilities(heads, file_of, classes):
    """The heads' tables (`file_of(head)`: predictions or out-of-fold probabilities) with p_<class> averaged.

    They must cover the same images (and, for CV, the same folds): heads trained on other features
    than their neighbours' would average apples and pears.
    """
    tables = [read_table(file_of(head), ["actual", "predicted"]) for head in heads]
    keys = [column for column in ("path", "fold") if column in tables[0]]
    if any(not t[keys].equals(tables[0][keys]) for t in tables):
        raise PipelineError(f"{', '.join(heads)} were scored on different images or folds: run `dvc repro`")
    columns = [f"p_{c}" for c in classes]
    mean = np.mean([t[columns].to_numpy(dtype=float) for t in tables], axis=0)
    return tables[0].assign(**dict(zip(columns, mean.T)))


def probabilities(table, classes):
    """(n, classes) probabilities and label indices of a table with p_<class> and actual columns."""
    return table[[f"p_{c}" for c in classes]].to_numpy(dtype=float), table["actual"].map(classes.index).to_numpy()


def choose(table):
    """The name of the row with the best CV accuracy, or None without CV.

    On a few hundred images accuracies often tie (mri-alzheimer: two rows at 157 of 160); the tie
    goes to the lower CV log loss, which also counts how sure the right answers were, then the name.
    """
    candidates = table[table["cv_accuracy"].notna()]
    if candidates.empty:
        return None
    ranked = candidates.sort_values(["cv_accuracy", "cv_log_loss", "row"], ascending=[False, True, True])
    return ranked["row"].iloc[0]


def chosen_models(row, metrics):
    """The model files `predict` averages for a row: the ensemble's heads, or the row's own model."""
    members = metrics.get("members", [row])
    return [str(paths.model_file(name)) for name in members]
