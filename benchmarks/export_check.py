"""The exported ONNX file against `predict` on real photos: largest probability difference per row type, file size,
and images per second of each, side by side in one process.

    python benchmarks/export_check.py DATASET [--train 40] [--test 32] [--size 150] [--rows ROW ...] [--no-bf16]

DATASET: a folder DATASET/train/<class>/<image> and DATASET/test (or validation)/<class>/<image>, e.g. the shared
cats-dogs-small. The real VGG16 weights come from VGG16_IMAGENET_WEIGHTS. Heads are fitted on fp32 features of
the first --train images per class (no augmentation; settings as params.yaml ships them), the fine-tuned model
trains one epoch; every row averages each image with its mirror image, as the shipped evaluate.tta does.
The last line compares a head fitted on bf16 features and predicted in bf16 (what `precision: auto` gives on
a CPU with bfloat16) with its export, which computes in fp32. One process per row keeps the memory down
(each export builds the backbone again; TensorFlow keeps some of every graph it built).
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from pipeline.data.images import files_under, load_image
from pipeline.export import export
from pipeline.features import backbone, engines, extraction
from pipeline.modeling import heads
from pipeline.modeling.feature_pass import FeaturePass
from pipeline.modeling.finetune import FineTuner, taking_images
from pipeline.modeling.heads import make_head
from pipeline.modeling.networks import Views
from pipeline.modeling.saved_model import SavedModel, average_proba

HEADS = {
    "logreg_l2": {"type": "logreg", "scale": "l2", "C": 10.0},
    "logreg_intermediate": {"type": "logreg", "layer": "intermediate", "C": 1.0},
    "linear_svm": {"type": "linear_svm", "scale": "l2", "C": 1.0},
    "rbf_svm": {"type": "rbf_svm", "scale": "l2", "C": 10.0},
    "dense_l2": {"type": "dense", "scale": "l2", "units": 256, "dropout": 0.5, "patience": 2},
}
ROWS = {"logreg_l2": ["logreg_l2"], "rbf_svm": ["rbf_svm"], "dense_l2": ["dense_l2"], "ensemble": list(HEADS),
        "finetuned": ["finetuned"]}


def split_files(root, split, per_class):
    folders = sorted(p for p in (root / split).iterdir() if p.is_dir())
    files = [f for folder in folders for f in files_under(folder)[:per_class]]
    return files, np.array([f.parent.name for f in files]), [folder.name for folder in folders]


def heads_on(files, labels, classes, weights, size, precision):
    extractor = extraction.Extractor(weights, size, "flatten", "keras", precision).load()
    arrays = extraction.arrays(extractor, extraction.IMAGE, files, [None] * len(files), 32)
    y = np.array([classes.index(label) for label in labels])
    provenance = {**extractor.provenance(), "weights": weights}
    models = {}
    for name, spec in HEADS.items():
        layer = spec.get("layer", heads.DEFAULT_LAYER)
        vectors = heads.vectors(arrays[heads.LAYERS[layer][0]], layer)
        models[name] = SavedModel(make_head(name, spec).fit(vectors, y), classes, size, tta=True,
                                  preprocessing=FeaturePass(provenance, layer))
    return models, arrays[backbone.INTERMEDIATE], y, provenance


def onnx_proba(session, files, size, batch_size=32):
    """What a user's code does: Pillow's pixels, batch by batch, through the exported file."""
    return np.concatenate([
        session.run(["probabilities"], {"images": np.stack([load_image(f, size) for f in files[i:i + batch_size]])})[0]
        for i in range(0, len(files), batch_size)])


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--train", type=int, default=40, help="training images per class")
    parser.add_argument("--test", type=int, default=32, help="images per class compared")
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="rows to compare (default: all)")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 comparison")
    args = parser.parse_args()
    weights = os.environ[backbone.WEIGHTS_ENV]
    files, labels, classes = split_files(args.dataset, "train", args.train)
    heldout = "test" if (args.dataset / "test").is_dir() else "validation"
    new, _, _ = split_files(args.dataset, heldout, args.test)
    models, block4, y, provenance = heads_on(files, labels, classes, weights, args.size, "fp32")
    if "finetuned" in args.rows:
        tuner = FineTuner(models["dense_l2"].model, weights, args.size, "flatten", epochs=1,
                          expected_sha256=provenance["weights_sha256"]).fit(Views(block4, y), (block4, y))
        models["finetuned"] = SavedModel(taking_images(tuner.model_), classes, args.size, tta=True)
    print(f"{len(new)} {heldout} images of {args.dataset.name}, {args.size} px, every row with TTA")
    print("| row | largest difference in a probability | same labels | ONNX file | predict images/s "
          "| onnxruntime images/s |\n|---|---|---|---|---|---|")
    for row in args.rows:
        chosen = [models[name] for name in ROWS[row]]
        graph = export(chosen)
        with tempfile.NamedTemporaryFile(suffix=".onnx") as file:
            file.write(graph.SerializeToString())
            file.flush()
            size = Path(file.name).stat().st_size
            session = onnxruntime.InferenceSession(file.name, providers=["CPUExecutionProvider"])
        onnx_proba(session, new, args.size)  # warm-up: first-run allocations
        expected, predict_seconds = timed(lambda: average_proba(chosen, new))
        found, onnx_seconds = timed(lambda: onnx_proba(session, new, args.size))
        same = (expected.argmax(axis=1) == found.argmax(axis=1)).mean()
        print(f"| {row} | {np.abs(found - expected).max():.1e} | {same:.0%} | {size / 1e6:.1f} MB "
              f"| {len(new) / predict_seconds:.1f} | {len(new) / onnx_seconds:.1f} |", flush=True)
    if engines.cpu_has_bf16() and not args.no_bf16:
        bf16, *_ = heads_on(files, labels, classes, weights, args.size, "bf16")
        chosen = [bf16["logreg_l2"]]
        session = onnxruntime.InferenceSession(export(chosen).SerializeToString(), providers=["CPUExecutionProvider"])
        expected = average_proba(chosen, new)
        found = onnx_proba(session, new, args.size)
        same = (expected.argmax(axis=1) == found.argmax(axis=1)).mean()
        print(f"bf16 features and predict, fp32 export (logreg_l2): largest difference "
              f"{np.abs(found - expected).max():.1e}, same labels {same:.0%}")


if __name__ == "__main__":
    main()
