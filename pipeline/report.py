"""The comparison of every row (heads, fine-tuning, scratch CNN): one table and its figures.

Rows are sorted by held-out accuracy. Each gets a 95% bootstrap interval and an exact McNemar
test against the best row on the same images; Keras rows get learning curves; the best row's
mistakes are shown as images, and so are the training images whose label cross-validation doubts
and those least like the rest.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import PipelineError, data, features, paths, plots, quality, stats
from pipeline.files import write_csv, write_text

SIGNIFICANCE = 0.05
GRID_LIMIT = 36  # images shown in a grid: the most confident first
ATYPICAL_SHOWN = 6


def load_row(name):
    metrics = json.loads(paths.metrics_file(name).read_text())
    predictions = pd.read_csv(paths.predictions_file(name), dtype={"actual": str, "predicted": str})
    return metrics, predictions


def summary_row(name, metrics, predictions):
    correct = (predictions["actual"] == predictions["predicted"]).to_numpy()
    low, high = stats.bootstrap_ci(correct)
    cv = metrics.get("cv", {})
    scored = metrics.get("heldout", {})
    return {
        "row": name,
        "approach": metrics.get("approach", f"bottleneck + {metrics['type']}"),
        "split": predictions["split"].iloc[0],
        "images": len(predictions),
        "accuracy": correct.mean(),
        "ci_low": low,
        "ci_high": high,
        "errors": int((~correct).sum()),
        "cv_accuracy": cv.get("accuracy", {}).get("mean"),
        "cv_std": cv.get("accuracy", {}).get("std"),
        "roc_auc": scored.get("roc_auc", cv.get("roc_auc", {}).get("mean")),
        "tta": metrics.get("tta", False),
        "seconds": metrics["fit_seconds"] + metrics.get("cv_seconds", 0),
        "speedup": metrics.get("speedup"),  # fine-tuning's step speed-up from cached block-4 output
    }


def comparison(rows, predictions):
    """One row per model, best held-out accuracy first, each tested against the best."""
    table = pd.DataFrame(rows).sort_values(["accuracy", "cv_accuracy"], ascending=False, na_position="last")
    best = table["row"].iloc[0]
    right = {name: (p["actual"] == p["predicted"]).to_numpy() for name, p in predictions.items()}
    for name, p in predictions.items():
        if list(p["path"]) != list(predictions[best]["path"]):
            raise PipelineError(f"{name} and {best} were scored on different images: run `dvc repro`")
    table["mcnemar_p"] = [np.nan if n == best else stats.mcnemar(right[n], right[best]) for n in table["row"]]
    return table.reset_index(drop=True)


def markdown_table(table):
    shown = pd.DataFrame({
        "row": table["row"],
        "approach": table["approach"],
        "CV accuracy": [fmt_spread(m, s) for m, s in zip(table["cv_accuracy"], table["cv_std"])],
        "held-out accuracy": table["accuracy"].map("{:.3f}".format),
        "95% CI": [f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "errors": [f"{e}/{n}" for e, n in zip(table["errors"], table["images"])],
        "vs best (McNemar p)": table["mcnemar_p"].map(fmt_test),
        "ROC AUC": table["roc_auc"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.3f}"),
        "TTA": table["tta"].map({True: "yes", False: "no"}),
        "train s": table["seconds"].map("{:.0f}".format),
    })
    return shown.to_markdown(index=False)


def fmt_spread(mean, std):
    if mean is None or pd.isna(mean):
        return "n/a"
    return f"{mean:.3f} ± {std:.3f}"


def fmt_test(p):
    if pd.isna(p):
        return "best"
    return f"{p:.3g} ({'differs' if p < SIGNIFICANCE else 'same'})"


def split_metadata():
    """Each extracted split's features metadata, in split order."""
    return {split: features.read_meta(paths.features_file(split)) for split in data.SPLITS
            if paths.features_file(split).exists()}


def predictions_grid(rows, data_dir, title, path):
    """Markdown and a figure of images (path, actual, predicted, probability), most confident first."""
    shown = rows.sort_values("probability", ascending=False).head(GRID_LIMIT)
    captions = [f"{r.actual} -> {r.predicted} ({r.probability:.2f})" for r in shown.itertuples()]
    plots.image_grid([Path(data_dir) / p for p in shown["path"]], captions, title, path)
    which = f"the {len(shown)} most confident of {len(rows)}" if len(rows) > len(shown) else f"all {len(rows)}"
    return f"Shown: {which} (label -> predicted (probability)).\n\n![{title}]({path.name})"


def misclassified_section(predictions, data_dir, best):
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    if wrong.empty:
        return "None: every held-out image is right."
    return predictions_grid(wrong, data_dir, f"{best}: mistakes", paths.REPORTS / "misclassified.png")


def doubted_labels_section(names, data_dir, classes):
    """Training images to look at, judged by every cross-validated head's out-of-fold probabilities averaged."""
    judges = [name for name in names if paths.out_of_fold_file(name).exists()]
    if not judges:
        return []
    tables = [pd.read_csv(paths.out_of_fold_file(name), dtype={"actual": str}) for name in judges]
    if any(list(t["path"]) != list(tables[0]["path"]) for t in tables):
        raise PipelineError(f"{', '.join(judges)} were cross-validated on different images: run `dvc repro`")
    averaged = tables[0].assign(**{f"p_{c}": np.mean([t[f"p_{c}"] for t in tables], axis=0) for c in classes})
    doubted = quality.doubted_labels(averaged, classes)
    heading, who = "## Training labels to check", f"the cross-validation of {', '.join(judges)}"
    if doubted.empty:
        return [heading, f"None: {who} agrees with every label."]
    write_csv(paths.REPORTS / "doubted_labels.csv", doubted)
    intro = (f"Training images that {who}, predicting each one from folds that never saw it, confidently "
             "puts in another class (cleanlab's confident learning on the averaged probabilities): "
             "mislabelled or out-of-scope images, and some that are merely hard. Fix or remove the wrong "
             "ones in your folders; the pipeline leaves them as they are. All are in doubted_labels.csv. ")
    return [heading, intro + predictions_grid(doubted, data_dir, "doubted labels",
                                              paths.REPORTS / "doubted_labels.png")]


def atypical_section(data_dir):
    """The training images least like their nearest neighbours: placeholders, screenshots, strays."""
    files, scores = quality.typicality(paths.features_file("train"))
    order = np.argsort(scores, kind="stable")
    write_csv(paths.REPORTS / "atypical.csv", pd.DataFrame({"path": files, "score": scores}).iloc[order])
    oddest = order[:ATYPICAL_SHOWN]
    path = paths.REPORTS / "atypical.png"
    plots.image_grid([Path(data_dir) / files[i] for i in oddest],
                     [f"{Path(files[i]).parent.name} ({scores[i]:.2f})" for i in oddest], "unlike the rest", path)
    return ["## Training images unlike the rest",
            f"The {len(oddest)} training images least like their nearest neighbours in VGG16's block-4 "
            f"features (cleanlab's out-of-distribution score, 0-1; the median image scores "
            f"{np.median(scores):.2f}). Low scores flag placeholders, screenshots and images from "
            f"elsewhere; most sets just have a few unusual photos. Every image's score is in atypical.csv."
            f"\n\n![unlike the rest]({path.name})"]


def write(names, data_dir):
    """Write reports/ (report.md, summary.csv and figures) for the rows `names`; return the table."""
    loaded = {name: load_row(name) for name in names}
    splits = split_metadata()
    extraction = sum(m["seconds"] for m in splits.values())
    table = comparison([summary_row(n, *loaded[n]) for n in names], {n: p for n, (_, p) in loaded.items()})
    table["extraction_seconds"] = extraction
    meta = splits["train"]
    classes = json.loads(meta["classes"])
    best = table["row"].iloc[0]
    heldout = f"{table['split'].iloc[0]} ({table['images'].iloc[0]} images)"
    sections = [
        "# Comparison",
        f"Data: `{data_dir}`; classes: {', '.join(classes)}. Features: VGG16 ({meta['weights']}, "
        f"sha256 {meta['weights_sha256'][:12]}), input {meta['input_size']} px, {meta['pooling']} pooling, "
        f"{meta['augmented_copies']} augmented copies per training image.",
        f"Scored on {heldout}, sorted by accuracy there. CV: k-fold on the training images, an image's "
        "augmented copies always in its fold. 95% CI: percentile bootstrap over the scored images. "
        f"McNemar: exact test of each row's right/wrong answers against the best row's ({best}) on "
        f"the same images; 'differs' when p < {SIGNIFICANCE}. Train s: CV and final fit.",
        markdown_table(table),
        "## Feature extraction",
        "\n".join(f"- {split}: {m['images']} images, {m['images'] / m['seconds']:.2f} images/s "
                  f"({m['seconds']:.0f} s, with copies and mirror images)" for split, m in splits.items()),
    ]
    sections += finetune_speed_section(loaded)
    sections += ["## Misclassified by the best row", misclassified_section(loaded[best][1], data_dir, best)]
    sections += doubted_labels_section(names, data_dir, classes) + atypical_section(data_dir)
    sections.append("## Learning curves")
    for name in names:
        if paths.history_file(name).exists():
            image = f"curve_{name}.png"
            plots.learning_curve(pd.read_csv(paths.history_file(name)), name, paths.REPORTS / image)
            sections.append(f"![{name} learning curve]({image})")
    sections.append("## Confusion matrices")
    for name in table["row"]:
        image = f"confusion_{name}.png"
        predictions = loaded[name][1]
        plots.confusion_matrix(predictions, classes, f"{name} ({predictions['split'].iloc[0]})",
                               paths.REPORTS / image)
        sections.append(f"![{name}]({image})")
    sections += ["## Skipped files", skipped_section()]
    write_csv(paths.REPORTS / "summary.csv", table)
    write_text(paths.REPORTS / "report.md", "\n\n".join(sections) + "\n")
    return table


def finetune_speed_section(loaded):
    lines = [f"- {name}: a training step takes {m['full_seconds_per_image'] * 1000:.0f} ms per image through "
             f"all of VGG16 and {m['cached_seconds_per_image'] * 1000:.0f} ms from cached block-4 output: "
             f"**{m['speedup']:.1f}x faster**; {m['epochs']} epochs in {m['fit_seconds']:.0f} s."
             for name, (m, _) in loaded.items() if "speedup" in m]
    return ["## Fine-tuning speed", "\n".join(lines)] if lines else []


def skipped_section():
    skipped = pd.read_csv(paths.SKIPPED, dtype=str)
    if skipped.empty:
        return "None: every file was read."
    return "\n".join(f"- `{row.path}`: {row.reason}" for row in skipped.itertuples())
