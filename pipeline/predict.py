"""Label new images: python -m pipeline.predict IMAGE_OR_FOLDER ... [--model MODEL ...]

With no --model, the row the report chose (reports/chosen.json: one model, or the ensemble's
heads, whose probabilities are averaged). Writes a CSV of path, label and probability (of that label).
"""
import argparse
import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from pipeline import PipelineError, augment, backbone, engines, evaluation, extraction, heads, networks, paths
from pipeline.files import write_csv
from pipeline.images import files_under, load_image, unreadable
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


def chosen_models():
    """The model files of the row the report chose."""
    if not paths.CHOSEN.is_file():
        raise PipelineError(f"no model named and no {paths.CHOSEN}: run `dvc repro` first, or name one with --model")
    chosen = json.loads(paths.CHOSEN.read_text())
    if not chosen:
        raise PipelineError("the report chose no row (none has cross-validation): name a model with --model")
    return chosen["models"]


def predict(bundles, files, weights=None, batch_size=32):
    """DataFrame of path, label, probability for `files`: the models' probabilities averaged,
    each model fed through its own input pipeline (heads on one backbone share its pass)."""
    classes = bundles[0]["classes"]
    if any(list(b["classes"]) != list(classes) for b in bundles):
        raise PipelineError("the models were trained on different classes: average only models of one run")
    extracted = {}
    proba = np.mean([image_model_proba(b, files, batch_size) if "images" in b else
                     head_proba(b, files, weights, batch_size, extracted) for b in bundles], axis=0)
    return pd.DataFrame({
        "path": [str(f) for f in files],
        "label": np.asarray(classes)[proba.argmax(axis=1)],
        "probability": proba.max(axis=1).round(6),
    })


def head_proba(bundle, files, weights, batch_size, extracted):
    """A head on cached VGG16 output: rebuild the backbone it was trained on, then apply the head.

    `extracted` keeps each backbone's outputs for the next head on the same backbone.
    """
    meta = bundle["features"]
    tta, layer = bundle.get("tta", False), bundle.get("layer", "block5")
    key = (meta["weights_sha256"], int(meta["input_size"]), meta["pooling"], meta.get("engine"),
           meta.get("precision"), tta)
    if key not in extracted:
        extracted[key] = extract(meta, files, weights, batch_size, tta)
    name = heads.LAYERS[layer][0]
    X = heads.vectors(extracted[key][name], layer)
    flipped = heads.vectors(extracted[key][f"{name}_flipped"], layer) if tta else None
    return evaluation.predict_proba(bundle["model"], X, len(bundle["classes"]), flipped)


def extract(meta, files, weights, batch_size, mirrored):
    """Every output of the VGG16 that made `meta`'s features, for `files` (and their mirror images).

    It runs on the engine and at the precision the features were extracted with (older models: Keras, fp32).
    """
    engine, precision = engines.resolve(meta.get("engine", "keras"), meta.get("precision", "fp32"))
    extractor = extraction.Extractor(backbone.weights_source(weights or meta["weights"]), int(meta["input_size"]),
                                     meta["pooling"], engine, precision).load()
    if extractor.weights_sha256_ != meta["weights_sha256"]:
        raise PipelineError(
            "these VGG16 weights differ from the ones the model was trained on: pass the "
            "same weights with --weights (or the same VGG16_IMAGENET_WEIGHTS)"
        )
    return {f"{name}{view.suffix}": array for view in extraction.views(mirrored=mirrored)
            for name, array in extraction.arrays(extractor, view, files, [None] * len(files), batch_size).items()}


def image_model_proba(bundle, files, batch_size):
    """An end-to-end Keras model (fine-tuned VGG16 or the scratch CNN) on the images themselves."""
    settings = bundle["images"]
    proba = []
    for start in range(0, len(files), batch_size):
        images = np.stack([load_image(f, settings["input_size"]) for f in files[start:start + batch_size]])
        views = [images, augment.mirror(images)] if settings["tta"] else [images]
        if settings["preprocess"] == "vgg16":
            views = [backbone.preprocess(v) for v in views]
        proba.append(np.mean([networks.proba(bundle["model"], v) for v in views], axis=0))
    return np.concatenate(proba)


@entry_point
def main(argv):
    parser = argparse.ArgumentParser(prog="python -m pipeline.predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("-m", "--model", action="append",
                        help="a saved model, e.g. models/logreg.joblib; repeat to average several "
                             f"(default: the report's chosen row, from {paths.CHOSEN})")
    parser.add_argument("-o", "--output", default="predictions.csv", help="CSV to write (default: %(default)s)")
    parser.add_argument("--weights", help="VGG16 weights file, if not the one recorded with the model")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    bundles = [load_bundle(path) for path in args.model or chosen_models()]
    files = image_files(args.images)
    if not files:
        raise PipelineError("no readable images among the inputs")
    table = predict(bundles, files, args.weights, args.batch_size)
    write_csv(args.output, table)
    print(table["label"].value_counts().to_string())
    print(f"{len(table)} images labelled in {args.output}")


if __name__ == "__main__":
    main()
