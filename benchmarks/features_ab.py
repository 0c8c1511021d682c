"""The features stage of two versions of the code on the same images, one after the other, cold feature cache.

    git worktree add /tmp/before COMMIT
    python benchmarks/features_ab.py DATA_DIR --work FOLDER --code /tmp/before:before --code .:after \
        [--engines FOLDER/cache/engines] [-S backbone.input_size=150 ...]

Each --code PATH:TAG gets a workspace FOLDER/TAG made by that code's own pipeline.workspace (shipped params.yaml,
heads only, changed by each -S as `dvc exp run -S` changes it), runs its prepare stage, then
`/usr/bin/time -v python -m pipeline.stages.featurize` there with an empty feature cache. --engines copies a
cache/engines folder in first (the quantized or converted networks, and int8's calibration notes), so that
neither version spends its time quantizing. Prints each version's wall seconds, peak memory and the stage's own
lines on what it extracted.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PEAK = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--code", dest="versions", action="append", required=True, help="PATH:TAG")
    parser.add_argument("--engines", type=Path)
    parser.add_argument("-S", dest="changes", action="append", default=[])
    args = parser.parse_args()
    for version in args.versions:
        code, tag = version.rsplit(":", 1)
        folder = (args.work / tag).resolve()
        shutil.rmtree(folder, ignore_errors=True)
        make = (f"from pipeline import workspace; workspace.prepare({str(folder)!r}, workspace.merged_params("
                f"{str(args.data_dir.resolve())!r}, {args.changes!r}, approaches=('heads',)))")
        subprocess.run([sys.executable, "-c", make], cwd=code, env={**os.environ, "PYTHONPATH": code}, check=True)
        if args.engines:
            shutil.copytree(args.engines, folder / "cache" / "engines")
        subprocess.run([sys.executable, "-m", "dvc", "repro", "prepare"], cwd=folder, check=True, capture_output=True)
        start = time.perf_counter()
        stage = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "pipeline.stages.featurize"], cwd=folder,
                               capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if stage.returncode:
            sys.exit(f"{tag}: the features stage failed:\n{stage.stderr[-2000:]}")
        peak = int(PEAK.search(stage.stderr).group(1)) / 1024 ** 2
        lines = [line for line in stage.stdout.splitlines() if "extracted now" in line]
        print(f"{tag}: {seconds:.1f} s, peak {peak:.2f} GB", *lines, sep="\n  ", flush=True)


if __name__ == "__main__":
    main()
