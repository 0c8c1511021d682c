"""Rows of a workspace fitted by two versions of the code, side by side: their scores and seconds.

    git worktree add /tmp/before COMMIT
    python benchmarks/rows_ab.py WORKSPACE... --work FOLDER --code /tmp/before:before --code .:after \
        --stage train:linear_svm --stage train:dense_l2 --stage finetune:finetune_top [--out rows.jsonl]

WORKSPACE is a project whose features stage has run (one `python -m pipeline.benchmark --work` made, say). For
each one and each --code PATH:TAG, FOLDER/<workspace name>/TAG gets that workspace's params.yaml and links to
its data/, features/ and cache/ (read, never written), and that code's pipeline/; then each --stage KIND:ROW
runs there as `/usr/bin/time -v python -m pipeline.stages.KIND ROW`, in the order given (fine-tuning reads the
dense head that TAG's own train stage saved). Prints one line per row and version: CV accuracy and log loss
for a head, selection images right for fine-tuning (what the report chooses on), the stage's wall seconds and
peak memory. The held-out scores, which the stages also write, are not read.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PEAK = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
SHARED = ("data", "features", "cache")  # what every version reads from the workspace as it is


def scores(metrics):
    """What the report chooses a row on: CV for a head, the selection images for a row without CV."""
    if "cv" in metrics:
        return {"cv_accuracy": metrics["cv"]["accuracy"]["mean"], "cv_log_loss": metrics["cv"]["log_loss"]["mean"]}
    chosen = metrics["selection"]
    return {"selection_right": round(chosen["accuracy"] * chosen["images"]), "selection_images": chosen["images"],
            "epochs": metrics.get("epochs")}


def run(folder, kind, row):
    start = time.perf_counter()
    stage = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", f"pipeline.stages.{kind}", row], cwd=folder,
                           capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if stage.returncode:
        sys.exit(f"{folder}: {kind} {row} failed:\n{stage.stderr[-2000:]}")
    metrics = json.loads((folder / "results" / row / "metrics.json").read_text())
    return {**scores(metrics), "seconds": round(seconds, 1),
            "peak_gb": round(int(PEAK.search(stage.stderr).group(1)) / 1024 ** 2, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspaces", nargs="+", type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--code", dest="versions", action="append", required=True, help="PATH:TAG")
    parser.add_argument("--stage", dest="stages", action="append", required=True, help="KIND:ROW")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for workspace in args.workspaces:
        for version in args.versions:
            code, tag = version.rsplit(":", 1)
            folder = (args.work / workspace.name / tag).resolve()
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name in SHARED:
                (folder / name).symlink_to((workspace / name).resolve(), target_is_directory=True)
            shutil.copy(workspace / "params.yaml", folder)
            shutil.copytree(Path(code) / "pipeline", folder / "pipeline",
                            ignore=shutil.ignore_patterns("__pycache__"))
            for stage in args.stages:
                kind, row = stage.split(":")
                result = {"workspace": workspace.name, "code": tag, "row": row, **run(folder, kind, row)}
                print(json.dumps(result), flush=True)
                if args.out:
                    with args.out.open("a") as out:
                        out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
