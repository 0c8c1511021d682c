"""One head row's CV under a few variants of its settings, on each dataset: what a changed default costs or gains.

    python benchmarks/head_variants.py DATA_DIR... --work FOLDER --head dense_l2 \
        --variant b32:batch_size=32 --variant b128:batch_size=128 [--out table.jsonl]

For each data folder, FOLDER/<its name> becomes a workspace with the shipped params.yaml (heads only) and its
features stage runs (kept when already there; the per-image cache is shared under FOLDER/cache). Then, for each
--variant NAME:KEY=VALUE[,KEY=VALUE], the row's shipped settings with those changed are fitted by the train
stage itself: 5-fold CV on the training images and the final fit. Only CV and the seconds are printed; the
held-out scores the stage also writes are not read.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipeline import workspace


def variant(text):
    name, _, changes = text.partition(":")
    return name, {key: yaml.safe_load(value) for key, value in (change.split("=") for change in changes.split(","))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dirs", nargs="+")
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--head", required=True)
    parser.add_argument("--variant", dest="variants", action="append", type=variant, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for data_dir in args.data_dirs:
        folder = args.work / Path(data_dir).name
        params = workspace.merged_params(data_dir, approaches=("heads",))
        shipped = params["heads"][args.head]
        workspace.prepare(folder, params, shared_cache=args.work / "cache")
        subprocess.run([sys.executable, "-m", "dvc", "repro", "features"], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL)
        for name, changes in args.variants:
            params["heads"] = {args.head: {**shipped, **changes}}
            (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pipeline.stages.train", args.head], cwd=folder, check=True,
                           stdout=subprocess.DEVNULL)
            metrics = json.loads((folder / "results" / args.head / "metrics.json").read_text())
            row = {"dataset": Path(data_dir).name, "variant": name, "cv_accuracy": metrics["cv"]["accuracy"]["mean"],
                   "cv_log_loss": metrics["cv"]["log_loss"]["mean"], "cv_seconds": round(metrics["cv_seconds"]),
                   "fit_seconds": round(metrics["fit_seconds"]), "stage_seconds": round(time.perf_counter() - start)}
            print(row, flush=True)
            if args.out:
                with args.out.open("a") as out:
                    out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
