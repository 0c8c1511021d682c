"""The comparison of every row (heads, their ensemble, fine-tuning, scratch CNN): one table and its figures.

One row is chosen before the held-out split is looked at (pipeline.report.selection: by CV accuracy, then
on the selection images against the rows without CV).
Every row's held-out accuracy gets an exact 95% interval, and every other row an exact McNemar
test against the chosen one on the same images, Holm-adjusted for the number of rows compared.
Keras rows get learning curves; the chosen row's mistakes are shown as images, and so are the
training images whose label cross-validation doubts, those least like the rest, and copies of
one image found in several places.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

from pipeline import PipelineError, paths
from pipeline.data import augment, catalog, duplicates
from pipeline.data.images import load_image
from pipeline.features import store
from pipeline.files import read_table, write_csv, write_json, write_text
from pipeline.modeling import evaluation, live
from pipeline.report import plots, quality, selection, setting_warnings, stats

SIGNIFICANCE = 0.05
GRID_LIMIT = 36  # images shown in a grid: the most confident first
ATYPICAL_SHOWN = 6
GROUPS_SHOWN = 40  # rows of thumbnails in the duplicates figure; the text lists every group
PREVIEW_COPIES = 4  # augmented copies shown per image (drawn as the cache would when it holds none)
AUGMENT_TRANSFORMS = ("rotation", "width_shift", "height_shift", "shear", "zoom", "horizontal_flip")


def load_row(name):
    metrics = json.loads(paths.metrics_file(name).read_text())
    return metrics, read_table(paths.predictions_file(name), ["actual", "predicted"])


def summary_row(name, metrics, predictions):
    correct = (predictions["actual"] == predictions["predicted"]).to_numpy()
    low, high = stats.accuracy_interval(correct)
    cv = metrics.get("cv", {})
    scored = metrics.get("heldout", {})
    return {
        "row": name,
        "approach": metrics.get("approach", f"bottleneck + {metrics['type']}"),
        "split": predictions["split"].iloc[0],
        "images": len(predictions),
        "accuracy": correct.mean(),
        # the mean of the classes' recalls: where one class is much larger, accuracy hides a neglected small one
        "balanced_accuracy": balanced_accuracy_score(predictions["actual"], predictions["predicted"]),
        "ci_low": low,
        "ci_high": high,
        "errors": int((~correct).sum()),
        "cv_accuracy": cv.get("accuracy", {}).get("mean"),
        "cv_std": cv.get("accuracy", {}).get("std"),
        "cv_log_loss": cv.get("log_loss", {}).get("mean"),
        "roc_auc": scored.get("roc_auc", cv.get("roc_auc", {}).get("mean")),
        "tta": metrics.get("tta", False),
        "seconds": metrics["fit_seconds"] + metrics.get("cv_seconds", 0),
        "speedup": metrics.get("speedup"),  # fine-tuning's step speed-up from the cached intermediate output
        "input_size": metrics.get("input_size"),  # recorded by rows that read images (the scratch CNN)
    }


def comparison(rows, predictions, selection_scores=None):
    """One row per model: the chosen one first, then by CV accuracy; each tested against the chosen one.

    `selection_scores` (selection.selection_scores) are each row's scores on the selection images. With no
    row to choose, rows are tested against the first, and nothing is marked chosen.
    """
    table = pd.DataFrame(rows)
    if selection_scores is not None:
        table = table.merge(selection_scores, on="row", how="left")
    chosen = selection.choose(table)
    table["chosen"] = table["row"] == chosen
    table = table.sort_values(["chosen", "cv_accuracy"], ascending=False, na_position="last", kind="stable")
    reference = table["row"].iloc[0]
    right = {name: (p["actual"] == p["predicted"]).to_numpy() for name, p in predictions.items()}
    for name, p in predictions.items():
        if list(p["path"]) != list(predictions[reference]["path"]):
            raise PipelineError(f"{name} and {reference} were scored on different images: run `dvc repro`")
    raw = [np.nan if n == reference else stats.mcnemar(right[n], right[reference]) for n in table["row"]]
    table["mcnemar_p"] = stats.holm(raw)
    return table.reset_index(drop=True)


def markdown_table(table):
    shown = pd.DataFrame({
        "row": table["row"],
        "approach": table["approach"],
        "CV accuracy": [fmt_spread(m, s) for m, s in zip(table["cv_accuracy"], table["cv_std"])],
        "selection accuracy": table.get("selection_accuracy", pd.Series(np.nan, table.index)).map(
            lambda v: "n/a" if pd.isna(v) else f"{v:.3f}"),
        "held-out accuracy": table["accuracy"].map("{:.3f}".format),
        "balanced accuracy": table["balanced_accuracy"].map("{:.3f}".format),
        "95% CI": [f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "errors": [f"{e}/{n}" for e, n in zip(table["errors"], table["images"])],
        "vs chosen (McNemar p, Holm)": [fmt_test(p, chosen) for p, chosen in zip(table["mcnemar_p"], table["chosen"])],
        "ROC AUC": table["roc_auc"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.3f}"),
        "held-out TTA": table["tta"].map({True: "yes", False: "no"}),
        "input px": table["input_size"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}"),
        "train s": table["seconds"].map("{:.0f}".format),
    })
    return shown.to_markdown(index=False, disable_numparse=True)  # "0.980" stays 0.980, an AUC of 0.9996 not "1"


def fmt_spread(mean, std):
    if mean is None or pd.isna(mean):
        return "n/a"
    return f"{mean:.3f} ± {std:.3f}"


def fmt_test(p, chosen=False):
    if pd.isna(p):
        return "chosen" if chosen else "reference"
    return f"{p:.3g} ({'differs' if p < SIGNIFICANCE else 'same'})"


def split_metadata():
    """Each extracted split's features metadata, in split order."""
    return {split: store.read_meta(paths.features_file(split)) for split in catalog.SPLITS
            if paths.features_file(split).exists()}


def extraction_line(split, meta):
    """How long a split's features took, and how many of its images came from the per-image cache."""
    extracted = meta.get("extracted", meta["images"])  # files written before the cache extracted every image
    engine = f" on {meta['engine']} at {meta['precision']}" if "engine" in meta else ""
    if "calibration_images" in meta:
        engine += f" (quantized on {int(meta['calibration_images'])} training images)"
    if not extracted:
        return f"- {split}: {meta['images']} images, all from the per-image cache ({meta['seconds']:.0f} s)"
    return (f"- {split}: {meta['images']} images, {extracted} extracted{engine}: {extracted / meta['seconds']:.2f} "
            f"images/s ({meta['seconds']:.0f} s, with copies and mirror images)")


def predictions_grid(rows, data_dir, title, path):
    """Markdown and a figure of images (path, actual, predicted, probability), most confident first."""
    shown = rows.sort_values("probability", ascending=False).head(GRID_LIMIT)
    captions = [f"{r.actual} -> {r.predicted} ({r.probability:.2f})" for r in shown.itertuples()]
    plots.image_grid([Path(data_dir) / p for p in shown["path"]], captions, title, path)
    which = f"the {len(shown)} most confident of {len(rows)}" if len(rows) > len(shown) else f"all {len(rows)}"
    return f"Shown: {which} (label -> predicted (probability)).\n\n![{title}]({path.name})"


def misclassified_section(predictions, data_dir, row):
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    if wrong.empty:
        return "None: every held-out image is right."
    return predictions_grid(wrong, data_dir, f"{row}: mistakes", paths.REPORTS / "misclassified.png")


def doubted_labels_section(heads, data_dir, classes):
    """Training images to look at, judged by every head's out-of-fold probabilities averaged."""
    if not heads:
        return []
    averaged = selection.mean_probabilities(heads, paths.out_of_fold_file, classes)
    doubted = quality.doubted_labels(averaged, classes)
    heading, who = "## Training labels to check", f"the cross-validation of {', '.join(heads)}"
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
            f"The {len(oddest)} training images least like their nearest neighbours in the backbone's intermediate "
            f"features (cleanlab's out-of-distribution score, 0-1; the median image scores "
            f"{np.median(scores):.2f}). Low scores flag placeholders, screenshots and images from "
            f"elsewhere; most sets just have a few unusual photos. Every image's score is in atypical.csv."
            f"\n\n![unlike the rest]({path.name})"]


def write(names, heads, data_dir, settings=None, selected=()):
    """Write reports/ (report.md, summary.csv, chosen.json and figures) for the rows `names`; return the table.

    `heads` are the rows with CV whose probabilities the ensemble row averages; `settings`, the
    params.yaml sections the report shows (and whose `augment` it previews); `selected`, the selection
    images' paths (pipeline.modeling.selection_images), on which every row is scored for the choice.
    """
    loaded = {name: load_row(name) for name in names}
    splits = split_metadata()
    meta = splits["train"]
    classes = json.loads(meta["classes"])
    combined = selection.ensemble(heads, classes, [loaded[head][0] for head in heads])
    if combined:
        loaded[selection.ENSEMBLE] = combined
    table = comparison([summary_row(n, *row) for n, row in loaded.items()], {n: p for n, (_, p) in loaded.items()},
                       selection.selection_scores(list(loaded), heads, classes, list(selected)))
    table["extraction_seconds"] = sum(m["seconds"] for m in splits.values())
    table["input_size"] = table["input_size"].fillna(meta["input_size"])  # rows on features: the backbone's size
    reference = table["row"].iloc[0]
    chosen = reference if table["chosen"].iloc[0] else None
    sections = [
        "# Comparison",
        f"Data: `{data_dir}`; classes: {', '.join(classes)}. Features: {meta['backbone']} ({meta['weights']}, "
        f"sha256 {meta['weights_sha256'][:12]}), input {meta['input_size']} px, {meta['pooling']} pooling, "
        f"{meta['augmented_copies']} augmented copies per training image.",
        choice_text(chosen, loaded, table),
        markdown_table(table),
    ]
    if settings:
        sections += warnings_section(settings, data_dir, int(meta["input_size"]))
    sections += chosen_row_section(reference, chosen, loaded[reference][1], classes, data_dir)
    sections += doubted_labels_section(heads, data_dir, classes) + atypical_section(data_dir)
    sections += ["## Copies of one image in several places", duplicates_section(data_dir)]
    if settings:
        sections += augmentation_section(settings["augment"], data_dir, meta["input_size"])
    figures = []
    for name in names:
        curves = live.read_curves(live.directory(name))  # DVCLive's files, as the Keras rows logged them
        if curves is not None:
            image = f"curve_{name}.png"
            plots.learning_curve(curves, name, paths.REPORTS / image)
            figures.append(f"![{name} learning curve]({image})")
    sections += ["## Learning curves", *figures] if figures else []  # heads on scikit-learn alone have none
    others = [confusion_figure(name, loaded[name][1], classes) for name in table["row"] if name != reference]
    if others:  # one paragraph: side by side where the page is wide enough
        sections += ["## Confusion matrices of the other rows", "\n".join(others)]
    sections += ["## Feature extraction", "\n".join(extraction_line(split, m) for split, m in splits.items())]
    sections += finetune_speed_section(loaded)
    sections += ["## Skipped files", skipped_section()]
    sections += settings_section(settings) if settings else []
    write_csv(paths.REPORTS / "summary.csv", table)
    write_json(paths.CHOSEN, chosen and chosen_record(chosen, loaded[chosen][0], table.iloc[0]))
    write_text(paths.REPORTS / "report.md", "\n\n".join(sections) + "\n")
    return table


def warnings_section(settings, data_dir, input_size):
    """Settings that look wrong for these images, one line each, judged on the training images alone
    (pipeline.report.setting_warnings)."""
    manifest = catalog.read_manifest(paths.MANIFEST)
    train = catalog.split_files(manifest, "train", data_dir)
    lines = setting_warnings.warnings(settings, train, input_size, store.mirror_sample(paths.features_file("train")),
                                      labels=manifest.loc[manifest["split"] == "train", "label"])
    return ["## Warnings", "\n".join(f"- {line}" for line in lines)] if lines else []


def chosen_record(chosen, metrics, row):
    """reports/chosen.json: the row, the model files predict averages, its scores and the rule that chose it."""
    images = int(row["selection_images"])
    return evaluation.to_builtin({
        "row": chosen, "models": selection.chosen_models(chosen, metrics),
        "cv_accuracy": metrics.get("cv", {}).get("accuracy"), "selection_images": images,
        "selection_accuracy": row["selection_accuracy"] if images else None, "rule": selection.RULE})


def choice_text(chosen, loaded, table):
    """How the row was chosen and how to read the columns."""
    scored = f"{table['split'].iloc[0]} ({table['images'].iloc[0]} images)"
    images = int(table["selection_images"].iloc[0])
    if chosen:
        cv = loaded[chosen][0].get("cv", {}).get("accuracy")
        score = (f"CV accuracy {cv['mean']:.3f} ± {cv['std']:.3f}" if cv else "")
        score += (", " if cv and images else "") + (
            f"{table['selection_accuracy'].iloc[0]:.3f} on the {images} selection images" if images else "")
        how = (f"**Chosen: {chosen}** ({score}), decided before the held-out split was looked at; `predict` uses it "
               f"when no model is named. {selection.RULE} ")
    else:
        how = ("No row has cross-validation or a selection score, so none is chosen: every row is tested against the "
               "first. ")
    if not images:
        how += ("There are no selection images (`evaluate.selection` is 0, or drew none), so rows without CV "
                "cannot be chosen. ")
    tta = ("Held-out TTA: the held-out score averages each image with its mirror image; CV scores each image once, "
           "without it. " if table["tta"].any() else "")
    return (how + f"Held-out: {scored}. CV: k-fold on the training images, augmented copies and copies of an image "
            "always in its fold. 95% CI: exact (Clopper-Pearson). McNemar: exact test of each row's right/wrong "
            f"answers against the {'chosen' if chosen else 'first'} row's on the same images, p Holm-adjusted for "
            f"the {len(table) - 1} comparisons; 'differs' when p < {SIGNIFICANCE}. Balanced accuracy: held-out, the "
            "mean of the classes' recalls. " + tta
            + "Train s: CV and final fit.")


def duplicates_section(data_dir):
    """Every group of copies found by prepare, with thumbnails, and what was left out of the held-out score."""
    found = duplicates.read(paths.DUPLICATES)
    if found.empty:
        return "None found: no image is in two places."
    left_out = found[found["left_out"]]
    conflicts = found.groupby("group")["label"].nunique().loc[lambda n: n > 1].index
    lines = [f"Groups of the same picture found by `prepare` (`{paths.DUPLICATES}`; exact copies by content "
             f"hash, near copies by perceptual hash): {found['group'].nunique()}, with {len(found)} images. "
             f"Held-out copies of training images left out of every held-out score: {len(left_out)} "
             "(`data.duplicates.heldout`: `drop` leaves them out, `keep` scores them). "
             "CV keeps the copies among the training images in one fold."]
    if len(conflicts):
        lines.append(f"**Groups under more than one label: {', '.join(map(str, conflicts))}.** The same picture "
                     "under two classes is a labelling error; fix it in your folders.")
    lines += [f"- group {g}: " + ", ".join(f"`{r.path}` ({r.split}, {r.kind}{', left out' if r.left_out else ''})"
                                           for r in rows.itertuples()) for g, rows in found.groupby("group")]
    path = paths.REPORTS / "duplicates.png"
    groups = list(found.groupby("group"))
    plots.image_groups([[(Path(data_dir) / r.path, f"#{g} {r.split}/{r.label}") for r in rows.itertuples()]
                        for g, rows in groups[:GROUPS_SHOWN]], path)
    shown = f"the first {GROUPS_SHOWN} groups" if len(groups) > GROUPS_SHOWN else "every group"
    return "\n".join(lines) + f"\n\nShown: {shown}.\n\n![copies of one image]({path.name})"


def finetune_speed_section(loaded):
    lines = [f"- {name}: a training step takes {m['full_seconds_per_image'] * 1000:.0f} ms per image through "
             f"the whole backbone and {m['cached_seconds_per_image'] * 1000:.0f} ms from cached intermediate output: "
             f"**{m['speedup']:.1f}x faster**; {m['epochs']} epochs in {m['fit_seconds']:.0f} s."
             for name, (m, _) in loaded.items() if "speedup" in m]
    return ["## Fine-tuning speed", "\n".join(lines)] if lines else []


def skipped_section():
    skipped = pd.read_csv(paths.SKIPPED, dtype=str)
    if skipped.empty:
        return "None: every file was read."
    return "\n".join(f"- `{row.path}`: {row.reason}" for row in skipped.itertuples())


def chosen_row_section(reference, chosen, predictions, classes, data_dir):
    """The chosen (or, with none chosen, the first) row's confusion matrix, per-class scores and mistakes."""
    return [f"## {reference}: {'the chosen row' if chosen else 'the first row'}",
            "### Confusion matrix", confusion_figure(reference, predictions, classes),
            "### Per-class precision and recall", per_class_table(predictions, classes),
            "### Misclassified images", misclassified_section(predictions, data_dir, reference)]


def confusion_figure(name, predictions, classes):
    image = f"confusion_{name}.png"
    plots.confusion_matrix(predictions, classes, f"{name} ({predictions['split'].iloc[0]})", paths.REPORTS / image)
    return f"![{name}]({image})"


def per_class_table(predictions, classes):
    """Precision and recall of each class on the held-out images (n/a: the row never predicted that class)."""
    precision, recall, _, support = precision_recall_fscore_support(
        predictions["actual"], predictions["predicted"], labels=classes, zero_division=np.nan)
    shown = pd.DataFrame({"class": classes, "held-out images": support,
                          "recall": [fmt_score(v) for v in recall], "precision": [fmt_score(v) for v in precision]})
    return ("Recall: the share of a class's images that the row puts in it; precision: the share of the images it "
            "puts in a class that belong there.\n\n"
            + shown.to_markdown(index=False, disable_numparse=True, colalign=("left", "right", "right", "right")))


def fmt_score(value):
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def augmentation_section(settings, data_dir, input_size):
    """A few training images beside their augmented copies as the backbone sees them: a bad setting shows at once."""
    heading = "## Augmented copies"
    if not any(settings[name] for name in AUGMENT_TRANSFORMS):
        return [heading, "None: every transform in `augment` is off, so a copy would be the image itself."]
    cached = settings["copies"]
    count = min(cached, PREVIEW_COPIES) or PREVIEW_COPIES
    manifest = catalog.read_manifest(paths.MANIFEST)
    train = manifest[manifest["split"] == "train"]
    # One image of each class in turn; one copy each leaves room for more images.
    shown = train.assign(rank=train.groupby("label").cumcount()).sort_values(["rank", "label"], kind="stable")
    shown = shown.head(8 if count == 1 else 6)
    copies = augment.Copies(settings, count, settings["seed"])
    images = np.stack([load_image(Path(data_dir) / p, input_size) for p in shown["path"]])
    made = copies(images, list(shown["sha256"]))
    preview = []
    for image, row, image_copies in zip(images, shown.itertuples(), made):
        turns = copies.draws(row.sha256)[:, augment.GEOMETRIC.index("rotation")]
        captions = [(f"{round(turn * 360):+d}°" if settings["rotation"] else f"copy {i + 1}")
                    + (", mirror" if copies.flip and i % 2 == 0 else "") for i, turn in enumerate(turns)]
        preview.append((image, f"{row.label}: {Path(row.path).name}"[:24], list(zip(image_copies, captions))))
    path = paths.REPORTS / "augmentation.png"
    plots.augmentation_preview(preview, "training images (bold) and their augmented copies", path)
    which = (f"their first {count} of {cached} augmented copies in the feature cache" if cached > count
             else f"their {cached} augmented {'copy' if cached == 1 else 'copies'} in the feature cache" if cached
             else f"{count} copies drawn as the feature cache would draw them (`augment.copies` is 0: it holds none)")
    return [heading,
            f"{len(shown)} training images (bold), {input_size} px as the network sees them, beside {which}; a scratch "
            f"CNN draws new ones from the same settings every epoch. "
            + ("Each copy's caption gives its rotation. " if settings["rotation"] else "")
            + f"Settings: {augmentation_settings(settings)}. A copy that no longer looks like its class (a digit on "
            f"its side, a photo upside down) teaches the models something false: lower that setting in params.yaml."
            f"\n\n![augmented copies]({path.name})"]


def augmentation_settings(settings):
    """`augment` in words, e.g. "rotation up to ±18°, zoom up to ±10%"."""
    words = {"rotation": f"rotation up to ±{settings['rotation'] * 360:.0f}°",
             "width_shift": f"horizontal shift up to ±{settings['width_shift']:.0%}",
             "height_shift": f"vertical shift up to ±{settings['height_shift']:.0%}",
             "shear": f"shear up to ±{settings['shear']:g}", "zoom": f"zoom up to ±{settings['zoom']:.0%}",
             "horizontal_flip": "every other copy mirrored"}
    return ", ".join(text for name, text in words.items() if settings[name])


def settings_section(settings):
    """The params.yaml values the report was made from, as they are written there."""
    return ["## Settings",
            "The params.yaml values this report was made from (`dvc params diff` compares them with another "
            "run's):\n\n```yaml\n" + yaml.safe_dump(settings, sort_keys=False).rstrip() + "\n```"]
