"""One fit of each shipped pooled-features head on a fusion's flattened features, and on the same features with
the second backbone's map averaged over its positions instead (backbone.pooling: auto for VGG16 + MobileNetV2).

    python benchmarks/pooling_fit_time.py WORKSPACE [--params params.yaml]

WORKSPACE is a benchmark workspace of the fused default with `backbone.pooling: flatten` (features/train.h5,
data/duplicates.csv). Averaging the flattened map over its positions is what `avg` pooling computes, so both
feature sets come from the one file; the fits alternate, head by head, so that other work on a shared machine
slows both alike. Each is the train stage's final fit (pipeline.modeling.evaluation.fit on every training view,
copies grouped as the stage groups them); CV is five such fits on four fifths of the rows. No held-out image is read.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
import yaml

from pipeline.data import duplicates
from pipeline.features import fusion, store
from pipeline.modeling import evaluation, heads


def feature_sets(train):
    """{name: (images, views, features)}: the fused flattened views, and the same with the second block averaged."""
    first, second = (int(width) for width in train.meta["feature_width"].split(fusion.SEPARATOR))
    views = train.views()
    channels = 1280  # MobileNetV2's last map
    side = int(round((second / channels) ** 0.5))
    averaged = views[..., first:].reshape(*views.shape[:2], side, side, channels).mean(axis=(2, 3))
    return {"flatten+flatten": views,
            "flatten+avg": np.concatenate([views[..., :first], fusion.unit_length(averaged)], axis=-1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--params", type=Path, default=Path(__file__).resolve().parents[1] / "params.yaml")
    args = parser.parse_args(argv)
    train = store.read(args.workspace / "features/train.h5")
    groups = duplicates.image_groups(train.paths, duplicates.read(args.workspace / "data/duplicates.csv"))
    sets = feature_sets(train)
    n, views = next(iter(sets.values())).shape[:2]
    y, groups = np.repeat(train.y, views), np.repeat(groups, views)
    total = dict.fromkeys(sets, 0.0)
    for name, spec in yaml.safe_load(args.params.read_text())["heads"].items():
        if heads.layer_of(spec) != heads.DEFAULT_LAYER:  # the intermediate output does not depend on the pooling
            continue
        for label, X in sets.items():
            start = time.perf_counter()
            evaluation.fit(heads.make_head(name, spec, seed=42), X.reshape(n * views, -1), y, groups=groups)
            seconds = time.perf_counter() - start
            total[label] += seconds
            print(f"{name}, {label} ({X.shape[-1]} features): {seconds:.1f} s "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    print("total: " + ", ".join(f"{label} {seconds:.0f} s" for label, seconds in total.items()))


if __name__ == "__main__":
    main()
