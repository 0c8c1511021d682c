"""Wall time and peak memory of each stage of a whole `dvc repro`, as a user waits for it.

    python benchmarks/stage_times.py DATA_DIR --work FOLDER [-S CHANGE ...] [--out table.md]

Makes FOLDER a workspace running this checkout's code on DATA_DIR with the shipped params.yaml
(changed by each -S as `dvc exp run -S` changes it), then runs its stages one at a time in
dvc.yaml's order, each as `dvc repro --single-item STAGE` under GNU time, and prints one row per
stage: wall seconds and the peak resident memory of the stage's process (GNU time reports the
largest of DVC and the stage command it waited for). The sum is what one `dvc repro` costs, plus
DVC's start-up once per stage (about a second). Outputs already in FOLDER are kept, so a second
run times only what changed: point --work at a new folder for a cold run.
"""
import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tabulate import tabulate

from pipeline import workspace

PEAK = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def stages(folder):
    listed = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], cwd=folder,
                            check=True, capture_output=True, text=True).stdout
    return listed.split()


def timed(folder, stage, log):
    """(wall seconds, peak RSS in GB) of `dvc repro --single-item stage` in `folder`."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"\n===== {stage}\n")
        out.flush()
        result = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "dvc", "repro", "--single-item", stage],
                                cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{stage} failed: see {log}")
    peak_kb = max(int(k) for k in PEAK.findall(Path(log).read_text().split(f"===== {stage}\n")[-1]))
    return seconds, peak_kb / 1024 ** 2


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("-S", dest="changes", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    workspace.prepare(args.work, workspace.merged_params(args.data_dir, args.changes))
    log = args.work / "stage_times.log"
    rows = []
    for stage in stages(args.work):
        seconds, peak = timed(args.work, stage, log)
        rows.append((stage, round(seconds), round(peak, 2)))
        print(f"{stage}: {seconds:.0f} s, peak {peak:.2f} GB", flush=True)
    rows.append(("whole run", sum(r[1] for r in rows), max(r[2] for r in rows)))
    table = tabulate(rows, headers=["stage", "wall s", "peak RSS GB"], tablefmt="github")
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
