"""What every trained row leaves behind: its SavedModel, metrics, predictions, CV or selection probabilities.

Keras rows' learning curves are DVCLive's files, written while they train (pipeline.modeling.live)."""
from pipeline import paths
from pipeline.files import write_csv, write_json


def save(name, model, metrics, predictions, out_of_fold=None, selection=None):
    """`model` is the row's pipeline.modeling.saved_model.SavedModel: the file `predict` loads; `selection`, a
    row without CV's probabilities on the selection images."""
    model.save(paths.model_file(name))
    write_csv(paths.predictions_file(name), predictions)
    if out_of_fold is not None:
        write_csv(paths.out_of_fold_file(name), out_of_fold)
    if selection is not None:
        write_csv(paths.selection_file(name), selection)
    write_json(paths.metrics_file(name), metrics)


def summary(name, metrics):
    """One line for the terminal."""
    cv = metrics.get("cv", {}).get("accuracy")
    held = metrics.get("heldout", {})
    parts = [f"CV accuracy {cv['mean']:.3f} ± {cv['std']:.3f}"] if cv else []
    if held:
        parts.append(f"{held['split']} accuracy {held['accuracy']:.3f}")
    return f"{name}: {', '.join(parts)}"
