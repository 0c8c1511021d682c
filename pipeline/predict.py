"""Label new images: python -m pipeline.predict IMAGE_OR_FOLDER ... [--model MODEL ...]

With no --model, the row the report chose (reports/chosen.json: one model, or the ensemble's
heads, whose probabilities are averaged). Writes a CSV of path, label and probability (of that label).
A folder of class folders (DIR/<class>/<image>) named after the model's classes is also scored:
its accuracy goes beside the CSV.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import PipelineError, paths
from pipeline.cli import entry_point
from pipeline.data.images import files_under, unreadable
from pipeline.files import write_csv, write_json
from pipeline.modeling.saved_model import SavedModel, average_proba


def image_files(inputs, classes=()):
    """(files, actual): the files named and those under the folders named, in a stable order, unreadable ones
    skipped; actual[i] is file i's class when a folder of class folders says it (folder_labels), else None."""
    files, actual = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = files_under(item)
            skipped = unreadable(found)
            found = [f for f in found if f not in skipped]
            files += found
            actual += folder_labels(item, found, classes)
        elif item.is_file():
            if not unreadable([item]):
                files.append(item)
                actual.append(None)
        else:
            raise PipelineError(f"{item} not found: give image files or folders of images")
    return files, actual


def folder_labels(folder, files, classes):
    """Each file's class folder, when every file under `folder` is in a folder named after one of `classes`
    (DIR/<class>/<image>); else None for each."""
    parts = [f.relative_to(folder).parts for f in files]
    if not files or any(len(p) < 2 for p in parts):
        return [None] * len(files)
    labels = [p[0] for p in parts]
    if not set(labels) <= set(classes):
        print(f"no accuracy for {folder}: its folders ({', '.join(sorted(set(labels)))}) "
              f"are not the model's classes ({', '.join(classes)})")
        return [None] * len(files)
    return labels


def chosen_models():
    """The model files of the row the report chose."""
    if not paths.CHOSEN.is_file():
        raise PipelineError(f"no model named and no {paths.CHOSEN}: run `dvc repro` first, or name one with --model")
    chosen = json.loads(paths.CHOSEN.read_text())
    if not chosen:
        raise PipelineError("the report chose no row (none has cross-validation): name a model with --model")
    return chosen["models"]


def predict(models, files, weights=None, batch_size=32):
    """DataFrame of path, label, probability for `files`: the SavedModels' probabilities averaged."""
    proba = average_proba(models, files, batch_size, weights)
    return pd.DataFrame({
        "path": [str(f) for f in files],
        "label": np.asarray(models[0].classes)[proba.argmax(axis=1)],
        "probability": proba.max(axis=1).round(6),
    })


def accuracy(actual, predicted, classes):
    """Accuracy over the images whose class is known, and per class: images, correct, and what they were labelled."""
    known = pd.DataFrame({"actual": actual, "label": predicted}).dropna(subset=["actual"])
    correct = known["actual"] == known["label"]
    per_class = {}
    for name in classes:
        rows = known["actual"] == name
        if rows.any():
            per_class[name] = {"images": int(rows.sum()), "correct": int(correct[rows].sum()),
                               "accuracy": round(float(correct[rows].mean()), 6),
                               "labelled": known.loc[rows, "label"].value_counts().to_dict()}
    return {"images": len(known), "correct": int(correct.sum()), "accuracy": round(float(correct.mean()), 6),
            "classes": per_class}


def accuracy_file(output):
    """Where the accuracy goes: beside the predictions, e.g. labels.csv -> labels.accuracy.json."""
    return Path(output).with_suffix(".accuracy.json")


def accuracy_text(scored):
    lines = [f"accuracy {scored['accuracy']:.3f} ({scored['correct']} of {scored['images']} images)"]
    lines += [f"  {name}: {counts['correct']} of {counts['images']} ({counts['accuracy']:.3f})"
              for name, counts in scored["classes"].items()]
    return "\n".join(lines)


@entry_point
def main(argv):
    parser = argparse.ArgumentParser(prog="python -m pipeline.predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files or folders; a folder DIR/<class>/<image> is also scored")
    parser.add_argument("-m", "--model", action="append",
                        help="a saved model, e.g. models/logreg.model; repeat to average several "
                             f"(default: the report's chosen row, from {paths.CHOSEN})")
    parser.add_argument("-o", "--output", default="predictions.csv", help="CSV to write (default: %(default)s)")
    parser.add_argument("--weights", help="the backbone's weights file, if not the one recorded with the model")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    names = args.model or chosen_models()
    models = [SavedModel.load(path) for path in names]
    files, actual = image_files(args.images, models[0].classes)
    if not files:
        raise PipelineError("no readable images among the inputs")
    table = predict(models, files, args.weights, args.batch_size)
    labelled = any(label is not None for label in actual)
    if labelled:
        table.insert(1, "actual", actual)
    write_csv(args.output, table)
    print(table["label"].value_counts().to_string())
    print(f"{len(table)} images labelled in {args.output}")
    if labelled:
        scored = accuracy(table["actual"], table["label"], models[0].classes)
        write_json(accuracy_file(args.output), {"models": names, **scored})
        print(f"{accuracy_text(scored)}\nwritten to {accuracy_file(args.output)}")


if __name__ == "__main__":
    main()
