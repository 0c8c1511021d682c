"""Time the shipped heads' CV and final fit on cached features, before and after a change to the heads.

    python benchmarks/heads_speed.py --code before --results notes/before.jsonl   # heads.py at --ref
    python benchmarks/heads_speed.py --code after --results notes/after.jsonl     # the working tree's
    python benchmarks/heads_speed.py --table notes/before.jsonl notes/after.jsonl

Each (dataset, head) runs in a child process under --timeout, so that one head that does not finish
is reported as such and the rest still run. The numbers are pipeline.modeling.evaluation.evaluate's: 5-fold
CV (evaluate.folds, evaluate.seed) on the training images of a benchmark workspace, with the
workspace's duplicate groups, then the final fit on every training row; no held-out image is read.
"Before" is heads.py, evaluation.py and params.yaml's heads at --ref; "after", the working tree's.
Besides each head's cv_seconds and fit_seconds (wall clock), the CPU seconds of CV and fit
together: on a machine shared with other work, the wall clock says more about the others.
The totals are those of cats-dogs-small: 2,000 images and their copies, 4,000 rows of 8,192 features.
"""
import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("mri-alzheimer", "hymenoptera", "produce-3class", "cats-dogs-small")
TIMED = "cats-dogs-small"  # 2,000 images and their copies: 4,000 rows of 8,192 features
BEFORE_REF = "8515792"  # the last commit with the calibrated-SVC heads


def load_at(ref, module):
    """pipeline.<module> as it was at git `ref`, imported beside today's."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:pipeline/{module}.py"],
                            check=True, capture_output=True, text=True).stdout
    loaded = types.ModuleType(f"pipeline_{module}_at_{ref}")
    exec(compile(source, f"{ref}:pipeline/{module}.py", "exec"), loaded.__dict__)
    return loaded


def run_one(workspaces, dataset, head, code, ref):
    """evaluate's metrics for one head on one dataset's training features, as a dict."""
    sys.path.insert(0, str(ROOT))
    from pipeline.data import duplicates
    from pipeline.features import store

    if code == "before":
        heads, evaluation = load_at(ref, "heads"), load_at(ref, "evaluation")
    else:
        from pipeline.modeling import evaluation, heads
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    spec = params["heads"][head] if code == "after" else yaml.safe_load(subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:params.yaml"], check=True, capture_output=True, text=True,
    ).stdout)["heads"][head]
    workspace = Path(workspaces) / dataset
    evaluate = yaml.safe_load((workspace / "params.yaml").read_text())["evaluate"]
    train = store.read(workspace / "features" / "train.h5")
    groups = duplicates.image_groups(train.paths, duplicates.read(workspace / "data" / "duplicates.csv"))
    model = heads.make_head(head, spec, seed=evaluate["seed"])
    cpu = time.process_time()  # every thread's: less swayed than wall time by other work on the machine
    _, result, _, _ = evaluation.evaluate(model, train, None, evaluate["folds"], evaluate["seed"], groups=groups)
    cpu = time.process_time() - cpu
    views = train.views()
    return {"dataset": dataset, "head": head, "code": code, "rows": views.shape[0] * views.shape[1],
            "features": views.shape[-1], "cv_accuracy": result["cv"]["accuracy"]["mean"],
            "cv_log_loss": result["cv"]["log_loss"]["mean"],
            "cv_seconds": result["cv_seconds"], "fit_seconds": result["fit_seconds"], "cpu_seconds": round(cpu, 1)}


def run_all(args):
    heads = args.heads or list(yaml.safe_load((ROOT / "params.yaml").read_text())["heads"])
    done = {(r["dataset"], r["head"]) for r in read_results([args.results]) if not r.get("failed")} \
        if args.results.exists() else set()
    for dataset in args.datasets:
        for head in heads:
            if (dataset, head) in done:
                continue
            start = time.perf_counter()
            try:
                child = subprocess.run(
                    [sys.executable, __file__, "--one", dataset, head, "--code", args.code, "--ref", args.ref,
                     "--workspaces", str(args.workspaces)],
                    capture_output=True, text=True, timeout=args.timeout)
                if child.returncode:  # recorded, and run again by the next call with these results
                    sys.stderr.write(child.stderr)
                    row = {"dataset": dataset, "head": head, "code": args.code, "failed": True}
                else:
                    row = json.loads(child.stdout.strip().splitlines()[-1])
            except subprocess.TimeoutExpired:
                row = {"dataset": dataset, "head": head, "code": args.code, "timed_out": True,
                       "cv_seconds": time.perf_counter() - start}
            with args.results.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def read_results(paths):
    return [json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.strip()]


def table(paths):
    """Markdown: one line per dataset and head, before beside after, then the timed dataset's totals."""
    rows = {}
    for r in read_results(paths):
        rows.setdefault((r["dataset"], r["head"]), {})[r["code"]] = r
    lines = ["| dataset | head | CV accuracy before | after | change (points) | cv_seconds before | after "
             "| fit_seconds before | after | CPU s before | after |", "|" + "---|" * 11]
    totals = {"before": [0.0, 0.0, False], "after": [0.0, 0.0, False]}  # wall s, CPU s, unfinished
    shipped = list(yaml.safe_load((ROOT / "params.yaml").read_text())["heads"])
    order = {name: shipped.index(name) if name in shipped else len(shipped) for _, name in rows}
    for (dataset, head), by_code in sorted(rows.items(), key=lambda kv: (DATASETS.index(kv[0][0]), order[kv[0][1]])):
        before, after = by_code.get("before"), by_code.get("after")
        change = f"{100 * (after['cv_accuracy'] - before['cv_accuracy']):+.1f}" if finished(before, after) else ""
        lines.append(f"| {dataset} | {head} | {cell(before, 'cv_accuracy', 3)} | {cell(after, 'cv_accuracy', 3)} "
                     f"| {change} | {cell(before, 'cv_seconds', 1)} | {cell(after, 'cv_seconds', 1)} "
                     f"| {cell(before, 'fit_seconds', 1)} | {cell(after, 'fit_seconds', 1)} "
                     f"| {cell(before, 'cpu_seconds', 1)} | {cell(after, 'cpu_seconds', 1)} |")
        for code, r in by_code.items():
            if dataset == TIMED:
                totals[code][0] += r.get("cv_seconds", 0.0) + r.get("fit_seconds", 0.0)
                totals[code][1] += r.get("cpu_seconds", 0.0)
                totals[code][2] |= not finished(r)
    lines.append("")
    for code, (wall, cpu, unfinished) in totals.items():
        lines.append(f"{TIMED}, all heads, CV + final fit, {code}: {'more than ' if unfinished else ''}{wall:.0f} s "
                     f"({cpu:.0f} CPU s{' in the heads that finished' if unfinished else ''})")
    return "\n".join(lines)


def finished(*results):
    return all(r is not None and "cv_accuracy" in r for r in results)


def cell(result, key, digits):
    if result is None:
        return ""
    if result.get("timed_out"):
        return f"> {result['cv_seconds'] / 60:.0f} min, not finished" if key == "cv_seconds" else "n/a"
    if result.get("failed"):
        return "failed"
    return f"{result[key]:.{digits}f}" if key in result else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", choices=("before", "after"), default="after")
    parser.add_argument("--ref", default=BEFORE_REF, help="git commit whose heads.py and evaluation.py are 'before'")
    parser.add_argument("--workspaces", type=Path, default=ROOT / "benchmarks" / "work")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--heads", nargs="+", help="names under params.yaml's heads (default: all)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per head and dataset")
    parser.add_argument("--results", type=Path, help="JSON lines file; heads already in it are skipped")
    parser.add_argument("--one", nargs=2, metavar=("DATASET", "HEAD"), help=argparse.SUPPRESS)
    parser.add_argument("--table", nargs="+", type=Path, help="print the table of these results files")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.workspaces, *args.one, args.code, args.ref)))
    elif args.table:
        print(table(args.table))
    else:
        if args.results is None:
            parser.error("--results is needed to run heads")
        run_all(args)
        print(table([args.results]))


if __name__ == "__main__":
    main()
