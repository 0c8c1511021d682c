"""Run the pipeline on benchmark datasets and tabulate accuracy and time against published figures.

python -m pipeline.benchmark DATASET_DIR... [--settings tuned defaults] [--approaches heads finetune scratch]

Each dataset gets a DVC workspace under --work per --settings (pipeline.workspace: this checkout's
code on the dataset's tuned settings from --config, or on params.yaml as shipped), so an interrupted
benchmark resumes where it stopped. Not a test: a
full run takes hours on a laptop CPU.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from pipeline import PipelineError, workspace
from pipeline.cli import entry_point
from pipeline.config import ROW_SECTIONS
from pipeline.files import write_text
from pipeline.report.markdown import fmt_spread, fmt_test
from pipeline.workspace import PROJECT

SETTINGS = ("tuned", "defaults")  # the dataset's entry in --config, or params.yaml as shipped (data.dir only)


def run_dataset(data_dir, entry, settings, approaches, work, changes=()):
    """`dvc repro` one dataset with `settings` in its workspace; returns its report's rows.

    `changes`: settings changed on top, as `dvc exp run -S` changes them ("key.path=value", "~row", "+key=value");
    each set of changes has a workspace of its own. Workspaces share one per-image feature cache, so they
    extract an image's views once wherever their backbone settings agree.
    """
    name = Path(data_dir).name
    folder = work / ".".join([name, *([] if settings == "tuned" else [settings]), *changes])
    base = tuned_params(entry) if settings == "tuned" else None
    workspace.prepare(folder, workspace.merged_params(data_dir, changes, approaches, base), shared_cache=work / "cache")
    workspace.repro(folder, log=folder / "repro.log")
    return pd.read_csv(folder / "reports" / "summary.csv").assign(dataset=name)


def tuned_params(entry):
    """The project's params with the dataset's tuned settings from --config: its rows (heads, finetune, scratch)
    replace the project's, so that a dataset runs only the rows tuned for it; other sections change key by key."""
    params = workspace.project_params()
    for section, values in entry.get("params", {}).items():
        if section in ROW_SECTIONS or not isinstance(values, dict):
            params[section] = values
        else:
            params[section].update(values)
    return params


def summary_line(name, rows, entry):
    """The chosen row (before the held-out split was looked at) against the published figure;
    compute time as recorded when each stage ran, so a resumed benchmark still reports what the work cost."""
    if not rows["chosen"].any():
        raise PipelineError(f"the report on {name} chose no row: the benchmark needs at least one head")
    chosen = rows[rows["chosen"]].iloc[0]
    target = entry.get("target")
    on_selection = chosen.get("selection_accuracy")
    met = "n/a" if target is None else ("yes" if chosen["accuracy"] >= target else "no")
    return {
        "dataset": name,
        "held-out": f"{chosen['split']} ({int(chosen['images'])})",
        "published": entry.get("published", "n/a"),
        "target": "n/a" if target is None else f">= {target}",
        "chosen row": chosen["row"],
        "CV accuracy": fmt_spread(chosen["cv_accuracy"], chosen["cv_std"]),
        "selection accuracy": "n/a" if pd.isna(on_selection) else f"{on_selection:.3f}",
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
    table["step speed-up, cached intermediate"] = rows["speedup"].map(lambda x: "" if pd.isna(x) else f"{x:.1f}x")
    return table.to_markdown(index=False)


def defaults_against_tuned(summaries):
    """Per dataset: the chosen row with the shipped defaults beside the one with the tuned settings.

    The defaults pass where their chosen row's CV accuracy is within 1 point of the tuned one's.
    """
    both = summaries.pivot(index="dataset", columns="settings").dropna()  # datasets that ran both settings
    rows = []
    for dataset, row in both.iterrows():
        cv = {s: float(row["CV accuracy"][s].split(" ")[0].replace("n/a", "nan")) for s in SETTINGS}
        gap = cv["tuned"] - cv["defaults"]  # NaN where a chosen row has no CV (fine-tuning, scratch)
        rows.append({"dataset": dataset, **{f"{s}: {column}": row[column][s] for s in SETTINGS
                                            for column in ("chosen row", "CV accuracy", "held-out accuracy")},
                     "CV gap, points": "n/a" if pd.isna(gap) else f"{100 * gap:+.1f}",
                     "defaults within 1 point": "n/a" if pd.isna(gap) else "yes" if gap <= 0.01 else "no"})
    return pd.DataFrame(rows)


def write_results(path, command, summaries, details):
    sections = [
        "# Benchmark",
        f"Made by `{command}` on {time.strftime('%Y-%m-%d')}, {sys.platform}, {os.cpu_count()} CPU cores. "
        "The chosen row is the report's, chosen on the training images before the held-out split is looked "
        "at: the best CV accuracy, unless a row without CV gets more of the selection images right (README, "
        "report); the best held-out accuracy of any row is shown beside it but chose "
        "nothing. Held-out images that copy a training image are left out (data.duplicates.heldout: drop). "
        "Targets and published figures are from the issues and ../shared/README.md. Settings: `defaults` is "
        "params.yaml as shipped with only data.dir set; `tuned` is the dataset's entry in "
        "benchmarks/datasets.yaml, tuned by CV on training data only.",
    ]
    if set(summaries["settings"]) == set(SETTINGS):  # the datasets that ran only one setting are left out here
        sections += ["## Shipped defaults against each dataset's tuned settings",
                     defaults_against_tuned(summaries).to_markdown(index=False)]
    sections += ["## Chosen rows", summaries.to_markdown(index=False)]
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
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                        help="each dataset's tuned settings from --config, the shipped params.yaml, or both "
                             "(default: both, compared)")
    parser.add_argument("-S", "--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting changed on top of --settings, exactly as dvc exp run -S changes it: "
                             "~KEY deletes a row, +KEY=VALUE adds a key (repeatable)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    summaries, details = [], {}
    for data_dir in args.datasets:
        if not Path(data_dir).is_dir():
            raise PipelineError(f"dataset folder {data_dir} not found")
        name = Path(data_dir).name
        for settings in args.settings:
            print(f"{name}, {settings} settings: dvc repro in {args.work} ...", flush=True)
            rows = run_dataset(data_dir, config.get(name, {}), settings, args.approaches, Path(args.work),
                               args.changes)
            summaries.append({"settings": settings, **summary_line(name, rows, config.get(name, {}))})
            details[f"{name}, {settings} settings"] = detail_table(rows)
            print(pd.DataFrame([summaries[-1]]).to_string(index=False), flush=True)
    command = "python -m pipeline.benchmark " + " ".join(argv)
    write_results(Path(args.out), command, pd.DataFrame(summaries), details)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
