"""Run the pipeline on benchmark datasets and tabulate accuracy and time against published figures.

python -m pipeline.benchmark DATASET_DIR... [--approaches heads finetune scratch]

Each dataset gets its own DVC workspace under --work (a copy of this project with the dataset's
settings from --config), so an interrupted benchmark resumes where it stopped. Not a test: a
full run takes hours on a laptop CPU.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from pipeline import PipelineError
from pipeline.config import ROW_SECTIONS
from pipeline.files import write_text
from pipeline.report import fmt_spread, fmt_test
from pipeline.stages import entry_point

PROJECT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("dvc.yaml", ".dvcignore")


def workspace_params(base, overrides, data_dir, approaches):
    """The project's params with a dataset's overrides; rows of approaches not chosen are dropped."""
    params = yaml.safe_load(yaml.safe_dump(base))  # a deep copy
    for section, values in overrides.items():
        if section in ROW_SECTIONS or not isinstance(values, dict):
            params[section] = values  # a dataset's own list of rows replaces the project's
        else:
            params[section].update(values)
    params["data"]["dir"] = str(Path(data_dir).resolve())
    for section in ROW_SECTIONS:
        if section not in approaches:
            params[section] = {}
    return params


def prepare_workspace(folder, params):
    """A DVC project in `folder` running this checkout's code on `params`; outputs there are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "pipeline", ignore_errors=True)
    shutil.copytree(PROJECT / "pipeline", folder / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in PROJECT_FILES:
        shutil.copy(PROJECT / name, folder / name)
    write_text(folder / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    if not (folder / ".dvc").is_dir():
        subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=folder, check=True)


def run_dataset(data_dir, config, approaches, work):
    """`dvc repro` one dataset in its workspace; returns its report's rows."""
    name = Path(data_dir).name
    entry = config.get(name, {})
    folder = work / name
    base = yaml.safe_load((PROJECT / "params.yaml").read_text())
    prepare_workspace(folder, workspace_params(base, entry.get("params", {}), data_dir, approaches))
    # dvc.yaml's commands say `python`: make it this interpreter, venv activated or not.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(folder / "repro.log", "w") as log:
        result = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=folder, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise PipelineError(f"dvc repro failed on {name}: see {folder / 'repro.log'}")
    return pd.read_csv(folder / "reports" / "summary.csv").assign(dataset=name)


def summary_line(name, rows, entry):
    """The chosen row (by CV, before the held-out split was looked at) against the published figure;
    compute time as recorded when each stage ran, so a resumed benchmark still reports what the work cost."""
    if not rows["chosen"].any():
        raise PipelineError(f"the report on {name} chose no row: the benchmark needs at least one head")
    chosen = rows[rows["chosen"]].iloc[0]
    target = entry.get("target")
    met = "n/a" if target is None else ("yes" if chosen["accuracy"] >= target else "no")
    return {
        "dataset": name,
        "held-out": f"{chosen['split']} ({int(chosen['images'])})",
        "published": entry.get("published", "n/a"),
        "target": "n/a" if target is None else f">= {target}",
        "chosen row": chosen["row"],
        "CV accuracy": fmt_spread(chosen["cv_accuracy"], chosen["cv_std"]),
        "held-out accuracy": f"{chosen['accuracy']:.3f}",
        "95% CI": f"{chosen['ci_low']:.3f}-{chosen['ci_high']:.3f}",
        "errors": int(chosen["errors"]),
        "met": met,
        "best held-out (not chosen by it)": f"{rows['accuracy'].max():.3f}",
        "extraction s": f"{chosen['extraction_seconds']:.0f}",
        "all rows' training s": f"{rows['seconds'].sum():.0f}",
    }


def detail_table(rows):
    table = rows[["row", "approach", "accuracy", "ci_low", "ci_high", "errors", "mcnemar_p", "seconds"]].copy()
    table.insert(2, "CV accuracy", [fmt_spread(m, s) for m, s in zip(rows["cv_accuracy"], rows["cv_std"])])
    table["95% CI"] = table.pop("ci_low").map("{:.3f}".format) + "-" + table.pop("ci_high").map("{:.3f}".format)
    table["accuracy"] = table["accuracy"].map("{:.3f}".format)
    table = table.rename(columns={"accuracy": "held-out accuracy"})
    table["McNemar p vs chosen, Holm"] = [fmt_test(p, chosen)
                                          for p, chosen in zip(table.pop("mcnemar_p"), rows["chosen"])]
    table["train s"] = table.pop("seconds").map("{:.0f}".format)
    table["step speed-up, cached block 4"] = rows["speedup"].map(lambda x: "" if pd.isna(x) else f"{x:.1f}x")
    return table.to_markdown(index=False)


def write_results(path, command, summaries, details):
    sections = [
        "# Benchmark",
        f"Made by `{command}` on {time.strftime('%Y-%m-%d')}, {sys.platform}, {os.cpu_count()} CPU cores. "
        "The chosen row is the one with the best CV accuracy on the training images, chosen before the "
        "held-out split is looked at; the best held-out accuracy of any row is shown beside it but chose "
        "nothing. Held-out images that copy a training image are left out (data.duplicates.heldout: drop). "
        "Targets and published figures are from the issues and ../shared/README.md. Settings per dataset: "
        "benchmarks/datasets.yaml, tuned by CV on training data only.",
        pd.DataFrame(summaries).to_markdown(index=False),
    ]
    for name, table in details.items():
        sections += [f"## {name}", table]
    write_text(path, "\n\n".join(sections) + "\n")


def load_config(path):
    """The datasets file, checked before hours of work depend on it."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    for name, entry in config.items():
        target = entry.get("target")
        if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))):
            raise PipelineError(f"{path}: {name}.target should be an accuracy like 0.98, got {target!r}")
    return config


@entry_point
def main(argv):
    parser = argparse.ArgumentParser(prog="python -m pipeline.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", help="dataset folders (DIR/<split>/<class>/<image>)")
    parser.add_argument("--approaches", nargs="+", choices=ROW_SECTIONS, default=list(ROW_SECTIONS))
    parser.add_argument("--config", default=PROJECT / "benchmarks/datasets.yaml",
                        help="published figures, targets and settings per dataset (default: %(default)s)")
    parser.add_argument("--work", default=PROJECT / "benchmarks/work", help="workspaces (default: %(default)s)")
    parser.add_argument("--out", default=PROJECT / "benchmarks/results.md",
                        help="table to write (default: %(default)s)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    summaries, details = [], {}
    for data_dir in args.datasets:
        if not Path(data_dir).is_dir():
            raise PipelineError(f"dataset folder {data_dir} not found")
        name = Path(data_dir).name
        print(f"{name}: dvc repro in {Path(args.work) / name} ...", flush=True)
        rows = run_dataset(data_dir, config, args.approaches, Path(args.work))
        summaries.append(summary_line(name, rows, config.get(name, {})))
        details[name] = detail_table(rows)
        print(pd.DataFrame([summaries[-1]]).to_string(index=False), flush=True)
    command = "python -m pipeline.benchmark " + " ".join(argv)
    write_results(Path(args.out), command, summaries, details)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
