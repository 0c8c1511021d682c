"""What every trained row leaves behind: model bundle, metrics, predictions, learning curve, CV probabilities."""
import joblib
import pandas as pd

from pipeline import paths
from pipeline.files import atomic_path, write_csv, write_json


def save(name, bundle, metrics, predictions, history=None, out_of_fold=None):
    with atomic_path(paths.model_file(name)) as tmp:
        joblib.dump(bundle, tmp)
    write_csv(paths.predictions_file(name), predictions)
    if out_of_fold is not None:
        write_csv(paths.out_of_fold_file(name), out_of_fold)
    write_json(paths.metrics_file(name), metrics)
    if history:
        curve = pd.DataFrame(history)
        curve.insert(0, "epoch", range(1, len(curve) + 1))
        write_csv(paths.history_file(name), curve)


def summary(name, metrics):
    """One line for the terminal."""
    cv = metrics.get("cv", {}).get("accuracy")
    held = metrics.get("heldout", {})
    parts = [f"CV accuracy {cv['mean']:.3f} ± {cv['std']:.3f}"] if cv else []
    if held:
        parts.append(f"{held['split']} accuracy {held['accuracy']:.3f}")
    return f"{name}: {', '.join(parts)}"
