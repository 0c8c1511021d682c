"""How the split of an unsplit folder behaves: per-class counts against the fractions, and images moved by additions.

    python benchmarks/split_stability.py DATASETS [--work DIR] [--first 400] [--added 40]

Each dataset under DATASETS (DIR/<split>/<class>/<image>) is merged into an unsplit folder,
WORK/<dataset>/all/<class>/<split>_<name>, of links to its images (nothing is copied), and the
prepare stage of the code on PYTHONPATH runs on it with this repository's params.yaml (only data.dir
changed): the table gives each class's images, and the test (and validation) images requested and
got. Then prepare runs on the first FIRST images of the folder (each class's by name in turn, links
again; fewer where the dataset has not ADDED more) and on those plus ADDED more, and the table
counts how many of the first images changed split. Run it once with this code and once with older code on
PYTHONPATH to compare. A benchmark, not a test: prepare reads every image twice (the file check and
the perceptual hash).
"""
import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def merged(dataset, folder, limit=None):
    """Link the images of dataset/<split>/<class>/ into folder/<class>/<split>_<name>: the first `limit`, taking
    each class's images by name in turn (so the first 400 of two equal classes are 200 of each)."""
    links = pd.DataFrame([(image.parent.name, f"{split.name}_{image.name}", image)
                          for split in sorted(dataset.iterdir()) if split.is_dir()
                          for image in split.glob("*/*") if not image.name.startswith(".")],
                         columns=["label", "name", "image"]).sort_values(["label", "name"])
    links["turn"] = links.groupby("label").cumcount()
    for row in links.sort_values(["turn", "label"]).head(limit or len(links)).itertuples():
        (folder / row.label).mkdir(parents=True, exist_ok=True)
        (folder / row.label / row.name).symlink_to(row.image.resolve())
    return folder


def prepare(images, work):
    """data/manifest.csv of the prepare stage, as the code on PYTHONPATH makes it, run in `work` on `images`."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["dir"] = str(images)
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run([sys.executable, "-m", "pipeline.stages.prepare"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    return pd.read_csv(work / "data/manifest.csv", dtype=str), params["data"]["split"]


def counts(manifest, fractions):
    """Per class: images, and for each held-out split the images requested (fraction x images) and got."""
    table = manifest.groupby(["label", "split"]).size().unstack(fill_value=0)
    rows = []
    for label, got in table.iterrows():
        total = got.sum()
        row = {"class": label, "images": total}
        for split in ("test", "validation"):
            if fractions[split]:
                row[f"{split} requested"] = f"{fractions[split] * total:.1f}"
                row[f"{split} got"] = got.get(split, 0)
        rows.append(row)
    return rows


def moved(dataset, work, first, added, total):
    """(images kept, of them moved to another split) when `added` images join the first `first` of `dataset`'s
    `total` (fewer where it has no `added` more)."""
    first = min(first, total - added)
    before, _ = prepare(merged(dataset, work / "before", first), work / "before_run")
    after, _ = prepare(merged(dataset, work / "after", first + added), work / "after_run")
    joined = before.merge(after, on="path", suffixes=("_before", "_after"))
    return len(joined), int((joined["split_before"] != joined["split_after"]).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work/split"))
    parser.add_argument("--first", type=int, default=400)
    parser.add_argument("--added", type=int, default=40)
    args = parser.parse_args()
    rows, moves = [], []
    for dataset in sorted(d for d in args.datasets.iterdir() if d.is_dir()):
        work = args.work / dataset.name
        shutil.rmtree(work, ignore_errors=True)  # links of an earlier run
        manifest, fractions = prepare(merged(dataset, work / "all"), work / "all_run")
        rows += [{"dataset": dataset.name, **row} for row in counts(manifest, fractions)]
        kept, changed = moved(dataset, work, args.first, args.added, total=len(manifest))
        moves.append({"dataset": dataset.name, "first images": kept, "added": args.added, "moved": changed})
    print(pd.DataFrame(rows).to_markdown(index=False))
    print()
    print(pd.DataFrame(moves).to_markdown(index=False))


if __name__ == "__main__":
    main()
