"""Label new images with a trained head: python -m pipeline.predict MODEL IMAGE_OR_FOLDER ...

Writes a CSV of path, label and probability (of that label).
"""
import argparse
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from pipeline import PipelineError, backbone, features
from pipeline.files import write_csv
from pipeline.images import files_under, unreadable
from pipeline.stages import entry_point


def image_files(inputs):
    """Files named, and the files under folders named, in a stable order; unreadable ones skipped."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += files_under(item)
        elif item.is_file():
            files.append(item)
        else:
            raise PipelineError(f"{item} not found: give image files or folders of images")
    skipped = unreadable(files)
    return [f for f in files if f not in skipped]


def load_bundle(path):
    try:
        return joblib.load(path)
    except FileNotFoundError:
        raise PipelineError(f"model {path} not found: train it with `dvc repro`, or check the name") from None


def predict(bundle, files, weights=None, batch_size=32):
    """DataFrame of path, label, probability for `files`, using the backbone the head was trained on."""
    meta = bundle["features"]
    size = int(meta["input_size"])
    model = backbone.build(weights or meta["weights"], size, meta["pooling"])
    if backbone.weights_digest(model) != meta["weights_sha256"]:
        raise PipelineError(
            "these VGG16 weights differ from the ones the model was trained on: pass the "
            "same weights with --weights (or the same VGG16_IMAGENET_WEIGHTS)"
        )
    X = np.concatenate(list(features.iter_batches(model, files, size, batch_size, "predict")))
    proba = bundle["model"].predict_proba(X)
    classes = np.asarray(bundle["classes"])
    return pd.DataFrame({
        "path": [str(f) for f in files],
        "label": classes[proba.argmax(axis=1)],
        "probability": proba.max(axis=1).round(6),
    })


@entry_point
def main(argv):
    parser = argparse.ArgumentParser(prog="python -m pipeline.predict", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a saved head, e.g. models/logreg.joblib")
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("-o", "--output", default="predictions.csv", help="CSV to write (default: %(default)s)")
    parser.add_argument("--weights", help="VGG16 weights file, if not the one recorded with the model")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    bundle = load_bundle(args.model)
    files = image_files(args.images)
    if not files:
        raise PipelineError("no readable images among the inputs")
    table = predict(bundle, files, args.weights, args.batch_size)
    write_csv(args.output, table)
    print(table["label"].value_counts().to_string())
    print(f"{len(table)} images labelled in {args.output}")


if __name__ == "__main__":
    main()
