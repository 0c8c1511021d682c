"""Label new images with a trained model: python -m pipeline.predict MODEL IMAGE_OR_FOLDER ...

Writes a CSV of path, label and probability (of that label).
"""
import argparse
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from pipeline import PipelineError, augment, backbone, evaluation, features, heads, networks
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


def predict(bundle, files, weights=None, batch_size=32):
    """DataFrame of path, label, probability for `files`, with the model's own input pipeline."""
    proba = image_model_proba(bundle, files, batch_size) if "images" in bundle else \
        head_proba(bundle, files, weights, batch_size)
    classes = np.asarray(bundle["classes"])
    return pd.DataFrame({
        "path": [str(f) for f in files],
        "label": classes[proba.argmax(axis=1)],
        "probability": proba.max(axis=1).round(6),
    })


def head_proba(bundle, files, weights, batch_size):
    """A head on cached VGG16 output: rebuild the backbone it was trained on, then apply the head."""
    meta = bundle["features"]
    size = int(meta["input_size"])
    base = backbone.conv_base(weights or meta["weights"], size)
    if backbone.weights_digest(base) != meta["weights_sha256"]:
        raise PipelineError(
            "these VGG16 weights differ from the ones the model was trained on: pass the "
            "same weights with --weights (or the same VGG16_IMAGENET_WEIGHTS)"
        )
    model = backbone.extractor(base, meta["pooling"])
    tta, layer = bundle.get("tta", False), bundle.get("layer", "block5")
    name = heads.LAYERS[layer][0]
    batches = list(features.iter_batches(model, files, size, batch_size, "predict", mirrored=tta))
    X = heads.vectors(np.concatenate([b[name] for b in batches]), layer)
    flipped = heads.vectors(np.concatenate([b[f"{name}_flipped"] for b in batches]), layer) if tta else None
    return evaluation.predict_proba(bundle["model"], X, len(bundle["classes"]), flipped)


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
    parser.add_argument("model", help="a saved model, e.g. models/logreg.joblib or models/finetune_block5.joblib")
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
