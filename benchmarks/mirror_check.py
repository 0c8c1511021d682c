"""The report's flip check on real training images: does it name the digits, and leave photos alone?

    python benchmarks/mirror_check.py DATASET... [--digits]

For each dataset (DIR/train/<class>/<image>) the training images of the mirror sample that the
features stage takes (pipeline.features.store.mirror_sample_rows: up to 200, by content hash) go
through VGG16 as they are and mirrored, at the size `backbone.input_size: auto` picks, and
pipeline.report.setting_warnings scores them as the report does. --digits adds scikit-learn's
digits (the demo's images, 64 px). Set VGG16_IMAGENET_WEIGHTS to a local weights file when offline.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

from pipeline.data import duplicates, image_size
from pipeline.data.images import files_under
from pipeline.features import backbone, extraction, store
from pipeline.report import setting_warnings


def scores(files, labels, size):
    """(images in the sample, accuracy on them, on their mirror images, warned, seconds) for training `files`."""
    started = time.perf_counter()
    keys = [duplicates.content_hash(f) for f in files]
    rows = store.mirror_sample_rows(keys)
    sample, sample_keys = [files[r] for r in rows], [keys[r] for r in rows]
    extractor = extraction.Extractor(backbone.weights_source("imagenet"), size, "flatten").load()
    own, mirrored = (extraction.arrays(extractor, view, sample, sample_keys, 32)["features"]
                     for view in (extraction.IMAGE, extraction.FLIPPED))
    result = setting_warnings.mirror_scores(own, mirrored, labels[rows])
    return len(rows), *result, setting_warnings.mirror_warning(result) is not None, time.perf_counter() - started


def training_images(folder):
    """(files, class indices) of folder/<class>/<image>."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir())
    pairs = [(f, i) for i, d in enumerate(classes) for f in files_under(d)]
    return [f for f, _ in pairs], np.array([i for _, i in pairs])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", type=Path)
    parser.add_argument("--digits", action="store_true")
    args = parser.parse_args()
    folders = {d.name: (d / "train", None) for d in args.datasets}
    if args.digits:
        from pipeline import demo
        digits = Path(tempfile.mkdtemp()) / "digits"
        demo.write_digits(digits)
        folders["digits (demo)"] = (digits, demo.SIZE)
    table = []
    for name, (folder, size) in folders.items():
        files, labels = training_images(folder)
        size = size or image_size.resolve(image_size.AUTO, files)
        table.append((name, size, *scores(files, labels, size)))
    print(tabulate(table, headers=["dataset", "px", "images", "accuracy", "on mirror images", "warns", "seconds"],
                   floatfmt=".3f", tablefmt="github"))


if __name__ == "__main__":
    main()
