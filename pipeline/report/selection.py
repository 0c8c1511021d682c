"""Which row the report stands behind, decided before the held-out split is looked at.

Heads compete on their cross-validation accuracy over the training images. The `ensemble` row
averages the heads' probabilities; its CV comes exactly from their saved out-of-fold probabilities,
which share the same folds, so it competes on the same footing. Fine-tuning and the scratch CNN have
no CV: they leave the selection images out (pipeline.modeling.selection_images) and are scored on
them, where the heads' and the ensemble's out-of-fold probabilities score them too, on the very same
images. A row without CV takes the choice from the CV winner only by getting more of them right.
"""
import numpy as np
import pandas as pd

from pipeline import PipelineError, paths
from pipeline.files import read_table
from pipeline.modeling import evaluation

ENSEMBLE = "ensemble"
# The rule in words, for the report, chosen.json and the README.
RULE = ("Selection images are a fraction `evaluate.selection` of the training images, drawn by content like the "
        "split, that fine-tuning and the scratch CNN neither train nor stop on, while the heads and the ensemble "
        "are scored there by their out-of-fold probabilities, so every row is scored on the same images, each "
        "once, without its mirror image. The heads and the ensemble compete by CV accuracy over all training "
        "images, and a row without CV takes the choice from that winner only by getting strictly more selection "
        "images right (among several, the most right, then the lower selection log loss), so a tie stays with "
        "the CV winner.")


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


def selection_scores(rows, heads, classes, selected):
    """A table of each row's selection_images, selection_accuracy and selection_log_loss on the images `selected`.

    The heads are scored by their out-of-fold probabilities, the ensemble by their average, the other rows
    by their selection files; each image once, never with its mirror image, so that the comparison is
    paired. Without selection images the scores are missing.
    """
    found = []
    for row in rows:
        if not selected:
            found.append({"row": row, "selection_images": 0})
            continue
        if row == ENSEMBLE:
            table = mean_probabilities(heads, paths.out_of_fold_file, classes)
        else:
            file = paths.out_of_fold_file(row) if row in heads else paths.selection_file(row)
            if not file.exists():
                raise PipelineError(f"{row} has no probabilities on the selection images ({file}): run `dvc repro`")
            table = read_table(file, ["actual"])
        on = table.set_index("path")
        own_file = row not in heads and row != ENSEMBLE  # holds the selection images alone
        if not set(selected) <= set(on.index) or (own_file and len(on) != len(selected)):
            raise PipelineError(f"{row} was scored on other selection images than evaluate.selection and evaluate.seed "
                                "draw now: run `dvc repro`")
        proba, y = probabilities(on.loc[selected], classes)
        scores = evaluation.scores(y, proba)
        found.append({"row": row, "selection_images": len(selected), "selection_accuracy": scores["accuracy"],
                      "selection_log_loss": scores["log_loss"]})
    return pd.DataFrame(found, columns=["row", "selection_images", "selection_accuracy", "selection_log_loss"])


def choose(table):
    """The name of the chosen row, or None when no row can be chosen.

    The rows with CV (heads, ensemble) compete on CV accuracy over all training images: k folds, more images
    and less noise than the selection images. On a few hundred images accuracies often tie (mri-alzheimer:
    two rows at 157 of 160); the tie goes to the lower CV log loss, which also counts how sure the right
    answers were, then the name. A row without CV (fine-tuning, scratch) then takes the choice only if it gets
    strictly more selection images right than that CV winner, on the same images (the most right among several,
    ties by the lower selection log loss, then the name); a tie stays with the CV winner, which has k folds
    of evidence behind it. Without rows with CV, the row without CV with the most right is chosen.
    """
    has_cv = table["cv_accuracy"].notna()
    ranked = table[has_cv].sort_values(["cv_accuracy", "cv_log_loss", "row"], ascending=[False, True, True])
    winner = ranked["row"].iloc[0] if len(ranked) else None
    if "selection_accuracy" not in table:
        return winner
    right = (table["selection_accuracy"] * table["selection_images"]).round()
    bar = right[table["row"] == winner].iloc[0] if winner is not None else -np.inf
    challengers = table.assign(right=right)[~has_cv & (right > bar)]
    if challengers.empty:
        return winner
    best = challengers.sort_values(["right", "selection_log_loss", "row"], ascending=[False, True, True])
    return best["row"].iloc[0]


def chosen_models(row, metrics):
    """The model files `predict` averages for a row: the ensemble's heads, or the row's own model."""
    members = metrics.get("members", [row])
    return [str(paths.model_file(name)) for name in members]
