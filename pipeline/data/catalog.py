"""Find the labelled images and split them.

Two layouts are accepted: DIR/<split>/<class>/<image> with splits train, validation
(or val) and test, and an unsplit DIR/<class>/<image> that is split here, stratified.
The user's files are only ever read.
"""
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline import PipelineError
from pipeline.data.images import files_under, printable, unreadable
from pipeline.files import read_table

SPLIT_FOLDERS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
SPLITS = ("train", "validation", "test")
MANIFEST_COLUMNS = ("path", "split", "label", "sha256")
HELDOUT_SPLITS = ("test", "validation")  # the first one present is scored and reported


def find_images(data_dir, validation=0.0, test=0.2, seed=42):
    """Return (manifest, skipped): DataFrames of (path, split, label) and (path, reason).

    Paths are relative to `data_dir`, as seen through linked folders. Files Pillow cannot decode,
    or whose names are not UTF-8, go to `skipped` (their paths there with \\xNN escapes).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise PipelineError(
            f"data folder {data_dir} not found: set data.dir in params.yaml to a folder "
            "of <class>/<image> or <split>/<class>/<image>"
        )
    split_dirs = find_split_dirs(data_dir)
    if split_dirs:
        rows = [row for split, d in split_dirs.items() for row in list_class_files(d, split)]
        check_same_classes(split_dirs)
    else:
        rows = list_class_files(data_dir, split=None)
    if not rows:
        raise PipelineError(
            f"no images in {data_dir}: expected {data_dir}/<class>/<image> "
            f"or {data_dir}/train/<class>/<image>"
        )
    files = pd.DataFrame(rows, columns=["file", "split", "label"])
    reasons = unreadable(files["file"])
    bad = files["file"].isin(list(reasons))
    skipped = pd.DataFrame({"path": relative(reasons, data_dir), "reason": list(reasons.values())})
    manifest = files[~bad].assign(path=lambda f: relative(f["file"], data_dir))
    if not split_dirs:
        manifest["split"] = stratified_split(manifest["label"], validation, test, seed)
    manifest = manifest[["path", "split", "label"]].reset_index(drop=True)
    if not (manifest["split"] == "train").any():
        raise PipelineError(f"no readable training images in {data_dir}")
    return manifest, skipped


def read_manifest(path):
    """A manifest CSV as written, every value text: a class folder named NA or None stays a label."""
    return read_table(path, MANIFEST_COLUMNS)


def check_classes(manifest, folds):
    """Raise PipelineError unless every class has enough training images for `folds`-fold CV."""
    if folds < 2:
        raise PipelineError(
            f"evaluate.folds is {folds}: cross-validation needs at least 2 folds; set evaluate.folds to 5"
        )
    classes = class_names(manifest)
    if len(classes) < 2:
        raise PipelineError(
            f"only one class ({classes[0]}) under data.dir: a classifier needs at least two class folders"
        )
    train = manifest.loc[manifest["split"] == "train", "label"].value_counts().reindex(classes, fill_value=0)
    short = train[train < folds]
    if len(short):
        counts = ", ".join(f"class {label!r} has only {count}" for label, count in short.items())
        raise PipelineError(
            f"{counts} training images but evaluate.folds is {folds}: add images or lower evaluate.folds"
        )


def find_split_dirs(data_dir):
    found = {}
    for child in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        split = SPLIT_FOLDERS.get(child.name.lower())
        if split is None:
            continue
        if split in found:
            raise PipelineError(
                f"{data_dir} has both {found[split].name}/ and {child.name}/: keep one of them"
            )
        found[split] = child
    if found and "train" not in found:
        raise PipelineError(f"{data_dir} has {', '.join(d.name for d in found.values())}/ but no train/")
    return found


def class_dirs(folder):
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def list_class_files(folder, split):
    return [
        (file, split, class_dir.name)
        for class_dir in class_dirs(folder)
        for file in files_under(class_dir)
    ]


def check_same_classes(split_dirs):
    expected = {d.name for d in class_dirs(split_dirs["train"])}
    for split, folder in split_dirs.items():
        found = {d.name for d in class_dirs(folder)}
        if found != expected:
            missing, extra = sorted(expected - found), sorted(found - expected)
            detail = "; ".join(
                part for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"not in train: {', '.join(extra)}" if extra else "",
                ) if part
            )
            raise PipelineError(
                f"class folders differ between train/ and {folder.name}/ ({detail}): "
                "every split needs the same class folders"
            )


def class_names(manifest):
    """The one class order used everywhere: sorted folder names."""
    return sorted(manifest["label"].unique())


def split_files(manifest, split, root):
    """The image files of one split of the manifest, under the data folder `root`."""
    return [Path(root) / path for path in manifest.loc[manifest["split"] == split, "path"]]


def heldout_split(splits):
    """The split that results are reported on, given the splits present (None if only train)."""
    present = set(splits)  # `splits` may be a one-pass iterator
    return next((split for split in HELDOUT_SPLITS if split in present), None)


def separate_validation_split(splits):
    """'validation' if that split is present and is not the reported one, else None: what early stopping watches."""
    present = set(splits)
    return "validation" if "validation" in present and heldout_split(present) != "validation" else None


def stratified_split(labels, validation, test, seed):
    if validation < 0 or test < 0 or validation + test >= 1:
        raise PipelineError(
            "params.yaml: data.split.validation and data.split.test must be >= 0 "
            f"and add up to less than 1 (got {validation} and {test})"
        )
    split = pd.Series("train", index=labels.index)
    rest = labels.index
    try:
        for name, fraction in (("test", test), ("validation", validation / (1 - test))):
            if fraction == 0:
                continue
            rest, held = train_test_split(
                rest, test_size=fraction, stratify=labels[rest], random_state=seed
            )
            split[held] = name
    except ValueError as exc:
        raise PipelineError(f"cannot split the images by class: {exc}") from exc
    return split


def relative(files, root):
    return [printable(Path(f).relative_to(root).as_posix()) for f in files]
