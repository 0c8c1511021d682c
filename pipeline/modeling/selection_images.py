"""The selection images: training images that the rows without CV neither fit nor stop on.

Fine-tuning and the scratch CNN leave them out and write their probabilities on them (each image once,
no mirror image), to pair with the heads' out-of-fold probabilities on the very same images: the report
chooses among all rows on them (pipeline.report.selection). pipeline.data.catalog.selection_images draws them.
"""
import numpy as np
import pandas as pd

from pipeline import PipelineError, paths
from pipeline.data import catalog, duplicates
from pipeline.modeling import evaluation


def selected_paths(fraction, seed):
    """The selection images' paths in the manifest's order, for evaluate.selection and evaluate.seed."""
    manifest = catalog.read_manifest(paths.MANIFEST)
    chosen = catalog.selection_images(manifest, duplicates.read(paths.DUPLICATES), fraction, seed)
    return list(manifest.loc[chosen, "path"])


def mask(train_paths, y, classes, fraction, seed, who):
    """Whether each training image (`train_paths`, labels `y` as class indices) is a selection image.

    Raises when a class would keep no image to train `who` on.
    """
    selected = np.isin(np.asarray(train_paths, dtype=object), selected_paths(fraction, seed))
    left = np.bincount(np.asarray(y)[~selected], minlength=len(classes))
    if (left == 0).any():
        raise PipelineError(f"evaluate.selection {fraction} leaves class {classes[int(np.argmin(left))]!r} no "
                            f"training image outside the selection images, so {who} cannot learn it: lower "
                            "evaluate.selection or add images")
    return selected


def scored(proba_of, X, y, image_paths, classes):
    """(table, scores) of a row on the selection images: `proba_of(X)` (skipped when there are none).

    The table (path, actual, p_<class>) is the row's selection file; the scores go into its metrics.
    """
    proba = proba_of(X) if len(y) else np.zeros((0, len(classes)))
    table = pd.concat([pd.DataFrame({"path": list(image_paths), "actual": np.asarray(classes)[np.asarray(y, int)]}),
                       evaluation.probability_columns(proba, classes)], axis=1)
    found = {"images": len(y)}
    if len(y):
        found.update({name: evaluation.scores(np.asarray(y), proba)[name] for name in ("accuracy", "log_loss")})
    return table, found
