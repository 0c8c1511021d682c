"""What class_weight: balanced does where one class is much smaller: heads with and without it, same folds.

    python benchmarks/imbalance.py benchmarks/work/cats-dogs-small --minority cats --keep 0.2 --heads logreg_l2

Reads a benchmark workspace's cached features (features/train.h5 and the held-out split's file, read
only), keeps every training image of the other classes and `--keep` of the `--minority` class's (drawn
with --seed), and runs pipeline.modeling.evaluation.evaluate for each head of params.yaml (this repository's,
or --params) twice: as written, and with class_weight: balanced. The CV uses the workspace's
evaluate settings and duplicate groups; the held-out split is left whole (balanced accuracy, the mean
of the classes' recalls, does not depend on how many images each class has there). A benchmark,
not a test: it needs a workspace whose features stage has run.
"""
import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.data import duplicates  # noqa: E402  (after the path above)
from pipeline.features import store  # noqa: E402  (after the path above)
from pipeline.modeling import evaluation, heads  # noqa: E402  (after the path above)


def read(path, layer):
    """A split's cached arrays of a head's `layer`, one vector per image and view (as the train stage reads)."""
    cached = store.read(path, heads.LAYERS[layer][0])
    return replace(cached, X=heads.vectors(cached.X, layer), augmented=heads.vectors(cached.augmented, layer),
                   flipped=heads.vectors(cached.flipped, layer))


def subsample(train, minority, keep, seed):
    """`train` with every image of the other classes and a `keep` fraction of the `minority` class's."""
    rows = np.flatnonzero(train.y == minority)
    kept = np.random.default_rng(seed).choice(rows, round(keep * len(rows)), replace=False)
    chosen = np.sort(np.concatenate([np.flatnonzero(train.y != minority), kept]))
    return replace(train, X=train.X[chosen], y=train.y[chosen], paths=[train.paths[i] for i in chosen],
                   augmented=None if train.augmented is None else train.augmented[chosen])


def heldout_file(workspace):
    for split in ("test", "validation"):
        if (workspace / "features" / f"{split}.h5").exists():
            return workspace / "features" / f"{split}.h5"
    raise SystemExit(f"{workspace}/features has no test.h5 or validation.h5: run its features stage first")


def run(args):
    workspace = Path(args.workspace)
    evaluate = yaml.safe_load((workspace / "params.yaml").read_text())["evaluate"]
    specs = yaml.safe_load(Path(args.params).read_text())["heads"]
    copies = duplicates.read(workspace / "data" / "duplicates.csv")
    rows = []
    for head in args.heads:
        layer = heads.layer_of(specs[head])
        full = read(workspace / "features" / "train.h5", layer)
        minority = full.classes.index(args.minority)
        train = subsample(full, minority, args.keep, args.seed)
        heldout = read(heldout_file(workspace), layer)
        groups = duplicates.image_groups(train.paths, copies)
        for weights in (None, "balanced"):
            spec = {**specs[head], "class_weight": weights} if weights else specs[head]
            model = heads.make_head(head, spec, seed=evaluate["seed"])
            start = time.perf_counter()
            _, result, predictions, _ = evaluation.evaluate(model, train, heldout, evaluate["folds"], evaluate["seed"],
                                                            tta=evaluate["tta"], groups=groups)
            recall = [(predictions["predicted"] == c)[predictions["actual"] == c].mean() for c in train.classes]
            rows.append({
                "head": head, "class_weight": weights or "-",
                "train images": " / ".join(f"{np.sum(train.y == k)} {c}" for k, c in enumerate(train.classes)),
                "CV accuracy": fmt(result["cv"]["accuracy"]),
                "CV balanced accuracy": fmt(result["cv"]["balanced_accuracy"]),
                f"{heldout.meta['split']} accuracy": f"{result['heldout']['accuracy']:.3f}",
                f"{heldout.meta['split']} balanced accuracy": f"{result['heldout']['balanced_accuracy']:.3f}",
                **{f"{c} recall": f"{r:.3f}" for c, r in zip(train.classes, recall)},
                "seconds": f"{time.perf_counter() - start:.0f}",
            })
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"{workspace.name}: {args.keep:.0%} of the {args.minority} training images kept (seed {args.seed}); "
          f"{heldout.meta['split']}: {len(heldout.y)} images, whole; {evaluate['folds']}-fold CV, "
          f"held-out TTA {evaluate['tta']}")
    print(pd.DataFrame(rows).to_markdown(index=False))


def fmt(summary):
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", help="a benchmark workspace with features/ (e.g. benchmarks/work/cats-dogs-small)")
    parser.add_argument("--minority", required=True, help="the class to subsample")
    parser.add_argument("--keep", type=float, default=0.2, help="fraction of its training images kept")
    parser.add_argument("--seed", type=int, default=0, help="which of them")
    parser.add_argument("--heads", nargs="+", default=["logreg_l2"], help="heads of --params")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"), help="where the heads are described")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
