"""Does INT8 extraction (OpenVINO, post-training quantization by NNCF) keep the heads' CV, and how fast is it?

    python benchmarks/int8_extraction.py DATASET_DIR... [--images 600] [--calibration 300] [--size 150]
        [--backbone vgg16]

For each dataset: up to --images training images (evenly over the sorted listing; DIR/train/ where there is
one), the backbone's features (its own pooling: VGG16 flattened, the others averaged) and averaged intermediate
output extracted by OpenVINO in fp32, in bf16 and in INT8. The INT8 model is quantized as `backbone.precision:
int8` quantizes it (pipeline.features.quantization), on --calibration of those training images (activation
ranges only: no labels). Each setting's extraction speed
(decode included, as the pipeline runs it) is printed beside Keras `predict` on preloaded arrays, measured in
the same process; then logreg_l2 and logreg_intermediate (the shipped rows) are cross-validated on each
setting's features (5 folds, seed 42, each image's own row only). Nothing is written.
Needs `make setup-extras` (OpenVINO and NNCF). Offline: set VGG16_IMAGENET_WEIGHTS (MOBILENETV2_..., ...).
"""
import argparse
import time
from pathlib import Path

import numpy as np
from engine_cv import HEADS as ENGINE_CV_HEADS  # scripts beside this one
from engine_cv import cv_accuracy
from engine_speed import keras_predict, sample
from tabulate import tabulate

from pipeline.data.images import load_image
from pipeline.features import backbone, engines

HEADS = {name: ENGINE_CV_HEADS[name] for name in ("logreg_l2", "logreg_intermediate")}  # the shipped rows
BATCH = 32


def training_files(folder, count):
    folder = Path(folder)
    return sample(folder / "train" if (folder / "train").is_dir() else folder, count)


def labels_of(files):
    names = [Path(f).parent.name for f in files]
    classes = sorted(set(names))
    return np.array([classes.index(n) for n in names]), len(classes)


def extract(run, files, size, name):
    """(features, averaged intermediate output, img/s with decoding) of `files`."""
    features, intermediate = [], []
    run(backbone.preprocess(np.stack([load_image(f, size) for f in files[:BATCH]]), name))  # warm-up
    start = time.perf_counter()
    for first in range(0, len(files), BATCH):
        out = run(backbone.preprocess(np.stack([load_image(f, size) for f in files[first:first + BATCH]]), name))
        features.append(out["features"])
        intermediate.append(out[backbone.INTERMEDIATE].mean(axis=(1, 2)))
    return np.concatenate(features), np.concatenate(intermediate), len(files) / (time.perf_counter() - start)


def compare(folder, args):
    files = training_files(folder, args.images)
    y, n_classes = labels_of(files)
    name = args.backbone
    model = backbone.extractor(backbone.conv_base(args.weights, args.size, name),
                               backbone.pooling_for(backbone.AUTO, name), name)
    calibration = backbone.preprocess(np.stack([load_image(f, args.size) for f in files[:: max(
        1, len(files) // args.calibration)][:args.calibration]]), name)
    start = time.perf_counter()
    runs = {"int8": engines.compile_for(model, "openvino", "int8", calibration=calibration)}
    quantizing = time.perf_counter() - start
    runs.update({precision: engines.compile_for(model, "openvino", precision) for precision in ("fp32", "bf16")})
    keras, _ = keras_predict(model, backbone.preprocess(np.stack([load_image(f, args.size) for f in files[:160]]),
                                                        name), BATCH)
    extracted = {precision: extract(run, files, args.size, name) for precision, run in runs.items()}
    rows = []
    baseline = {head: cv_accuracy(head, HEADS[head], extracted["fp32"][0 if head == "logreg_l2" else 1], y, n_classes,
                                  None) for head in HEADS}
    for precision in ("fp32", "bf16", "int8"):
        features, intermediate, speed = extracted[precision]
        for head in HEADS:
            accuracy, predicted = cv_accuracy(head, HEADS[head], features if head == "logreg_l2" else intermediate,
                                              y, n_classes, None)
            rows.append([Path(folder).name, len(files), precision, f"{speed:.1f}", f"{speed / keras:.2f}x", head,
                         f"{100 * accuracy:.2f}", f"{100 * (accuracy - baseline[head][0]):+.2f}",
                         int((predicted != baseline[head][1]).sum())])
    print(f"{Path(folder).name}, {name}: quantizing on {len(calibration)} images took {quantizing:.0f} s; "
          f"Keras predict {keras:.1f} img/s", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--calibration", type=int, default=300)
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--backbone", default=backbone.DEFAULT, choices=list(backbone.BACKBONES))
    parser.add_argument("--weights", default="imagenet", help="imagenet (<NAME>_IMAGENET_WEIGHTS) or a .h5 file")
    args = parser.parse_args(argv)
    rows = [row for folder in args.datasets for row in compare(folder, args)]
    print(tabulate(rows, ["dataset", "images", "precision", "img/s", "vs Keras predict", "head", "CV %",
                          "vs fp32", "predictions changed"], tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
