"""The comparison of every head: one table, confusion matrices, and the files that were skipped."""
import json

import pandas as pd

from pipeline import data, features, paths, plots
from pipeline.files import write_csv, write_text

SHOWN = ("accuracy", "f1_macro", "roc_auc", "log_loss")


def head_row(name, result):
    row = {"head": name, "type": result["type"]}
    for metric in SHOWN:
        cv = result["cv"][metric]
        row[f"CV {metric}"] = format_spread(cv["mean"], cv["std"])
    heldout = result.get("heldout", {})
    split = heldout.get("split", "held-out")
    for metric in SHOWN:
        row[f"{split} {metric}"] = format_value(heldout.get(metric))
    row["fit s"] = f"{result['fit_seconds']:.1f}"
    row["CV s"] = f"{result['cv_seconds']:.1f}"
    return row


def format_value(value):
    return "n/a" if value is None else f"{value:.3f}"


def format_spread(mean, std):
    if mean is None:
        return "n/a"
    return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"


def comparison(heads):
    """One row per head, best cross-validated accuracy first."""
    results = {name: json.loads(paths.metrics_file(name).read_text()) for name in heads}
    order = sorted(heads, key=lambda n: -(results[n]["cv"]["accuracy"]["mean"] or 0))
    return pd.DataFrame([head_row(name, results[name]) for name in order])


def split_metadata():
    """Each extracted split's features metadata, in split order."""
    return {split: features.read_meta(paths.features_file(split)) for split in data.SPLITS
            if paths.features_file(split).exists()}


def write(heads, data_dir):
    """Write reports/ (report.md, summary.csv, one confusion matrix per head); return the table."""
    table = comparison(heads)
    splits = split_metadata()
    meta = splits["train"]
    classes = json.loads(meta["classes"])
    sections = [
        "# Head comparison",
        f"Data: `{data_dir}`; classes: {', '.join(classes)}. Features: VGG16 "
        f"({meta['weights']}, sha256 {meta['weights_sha256'][:12]}), input {meta['input_size']} px, "
        f"{meta['pooling']} pooling.",
        "Sorted by cross-validated accuracy (mean ± standard deviation over folds).",
        table.to_markdown(index=False),
        "## Feature extraction",
        "\n".join(f"- {split}: {m['images']} images, {m['images'] / m['seconds']:.1f} images/s"
                  for split, m in splits.items()),
        "## Confusion matrices",
    ]
    for name in table["head"]:
        predictions = pd.read_csv(paths.predictions_file(name), dtype={"actual": str, "predicted": str})
        image = f"confusion_{name}.png"
        split = predictions["split"].iloc[0]
        plots.confusion_matrix(predictions, classes, f"{name} ({split})", paths.REPORTS / image)
        sections.append(f"![{name}]({image})")
    sections += ["## Skipped files", skipped_section()]
    write_csv(paths.REPORTS / "summary.csv", table)
    write_text(paths.REPORTS / "report.md", "\n\n".join(sections) + "\n")
    return table


def skipped_section():
    skipped = pd.read_csv(paths.SKIPPED, dtype=str)
    if skipped.empty:
        return "None: every file was read."
    return "\n".join(f"- `{row.path}`: {row.reason}" for row in skipped.itertuples())
