"""Do the heads' CV scores change when another engine or precision extracts the features?

    python benchmarks/engine_cv.py [--datasets NAME...] [--settings openvino:bf16 openvino:fp32]

For each benchmark workspace (benchmarks/work/<name>/, read only), the training images named in
features/train.h5 are extracted again with each engine setting, at the workspace's input size and
pooling, and three logistic-regression heads are cross-validated (5 folds, seed 42, copies found by
prepare kept in one fold) on those features and on the cached Keras fp32 ones. Only each image's own
row (view 0, no augmented copies) is used on both sides, so the comparison is like for like.
Extracted features are kept under --cache (outside the repository) so a second run only redoes CV.
Set VGG16_IMAGENET_WEIGHTS to a local weights file when offline.
"""
import argparse
import os
import time
from pathlib import Path

import h5py
import numpy as np
import yaml
from tabulate import tabulate

from pipeline.data import duplicates
from pipeline.data.images import load_image
from pipeline.features import backbone, engines
from pipeline.modeling import evaluation, heads

WORK = Path(__file__).resolve().parent / "work"
DATASETS = ("cats-dogs-small", "hymenoptera", "mri-alzheimer", "produce-3class")
HEADS = {
    "logreg_l2": {"type": "logreg", "scale": "l2", "C": 10.0},
    "logreg": {"type": "logreg", "C": 1.0},
    "logreg_intermediate": {"type": "logreg", "layer": "intermediate", "C": 1.0},
}
FOLDS, SEED = 5, 42


def cached_keras_features(workspace):
    """(features, the intermediate output averaged over positions, labels, paths) of the training images' own rows."""
    with h5py.File(workspace / "features" / "train.h5", "r") as h5:
        intermediate = np.concatenate([h5[backbone.INTERMEDIATE][i:i + 256].mean(axis=(1, 2))
                                       for i in range(0, len(h5["labels"]), 256)])
        return h5["features"][:], intermediate, h5["labels"][:], [p.decode() for p in h5["paths"][:]]


def extract(files, size, pooling, weights, engine, precision, batch_size=32):
    """(features, the intermediate output averaged over positions, img/s) for `files` through `engine`."""
    model = backbone.extractor(backbone.conv_base(weights, size), pooling)
    run = engines.compile_for(model, engine, precision)
    features, intermediate = [], []
    start = time.perf_counter()
    for first in range(0, len(files), batch_size):
        images = np.stack([load_image(f, size) for f in files[first:first + batch_size]])
        out = run(backbone.preprocess(images))
        features.append(out["features"])
        intermediate.append(out[backbone.INTERMEDIATE].mean(axis=(1, 2)))
    return np.concatenate(features), np.concatenate(intermediate), len(files) / (time.perf_counter() - start)


def engine_features(name, params, paths, setting, cache, weights):
    """Extract once per dataset and setting; later runs read the cache."""
    path = cache / f"{name}_{setting[0]}_{setting[1]}.npz"
    if not path.exists():
        backbone_params = params["backbone"]
        files = [Path(params["data"]["dir"]) / p for p in paths]
        pooling = backbone.pooling_for(backbone_params["pooling"])  # VGG16's, as extract runs it
        features, intermediate, speed = extract(files, backbone_params["input_size"], pooling,
                                                weights, *setting)
        print(f"{name}: extracted {len(files)} images with {setting[0]} {setting[1]} at {speed:.2f} img/s",
              flush=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, features=features, intermediate=intermediate, speed=speed)
        os.replace(tmp, path)
    with np.load(path) as saved:
        return saved["features"], saved["intermediate"]


def cv_accuracy(head, spec, X, y, n_classes, groups):
    """(mean accuracy over the folds, out-of-fold predicted classes)."""
    model = heads.make_head(head, spec, seed=SEED)
    out_of_fold, _, per_fold = evaluation.cross_validate(model, X[:, None], y, n_classes, FOLDS, SEED, groups)
    return per_fold["accuracy"].mean(), out_of_fold.argmax(axis=1)


def distance(got, expected):
    cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    return np.abs(got - expected).max() / np.abs(expected).max(), cosine.min()


def compare(name, settings, cache, weights):
    workspace = WORK / name
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    features, intermediate, y, paths = cached_keras_features(workspace)
    groups = duplicates.image_groups(paths, duplicates.read(workspace / "data" / "duplicates.csv"))
    n_classes = len(np.unique(y))
    keras = {"pooled": features, "intermediate": intermediate}
    baseline = {head: cv_accuracy(head, spec, keras[heads.layer_of(spec)], y, n_classes, groups)
                for head, spec in HEADS.items()}
    rows = []
    for setting in settings:
        got = dict(zip(("pooled", "intermediate"), engine_features(name, params, paths, setting, cache, weights)))
        rel, cosine = distance(got["pooled"], features)
        for head, spec in HEADS.items():
            layer = heads.layer_of(spec)
            accuracy, predicted = cv_accuracy(head, spec, got[layer], y, n_classes, groups)
            base_accuracy, base_predicted = baseline[head]
            rows.append([name, len(y), head, " ".join(setting), f"{100 * base_accuracy:.2f}",
                         f"{100 * accuracy:.2f}", f"{100 * (accuracy - base_accuracy):+.2f}",
                         int((predicted != base_predicted).sum()), f"{rel:.1e}", f"{cosine:.6f}"])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--settings", nargs="+", default=["openvino:bf16"], metavar="ENGINE:PRECISION")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/engine_cv"))
    parser.add_argument("--weights", default="imagenet", help="imagenet ($VGG16_IMAGENET_WEIGHTS) or a .h5 file")
    args = parser.parse_args(argv)
    settings = [engines.resolve(*s.split(":")) for s in args.settings]
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets:
        rows += compare(name, settings, args.cache, args.weights)
    print(tabulate(rows, ["dataset", "images", "head", "engine", "Keras fp32 CV %", "engine CV %", "difference",
                          "predictions changed", "max rel diff", "min cosine"],
                   tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
