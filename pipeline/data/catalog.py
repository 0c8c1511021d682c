"""Find the labelled images and split them.

Two layouts are accepted: DIR/<split>/<class>/<image> with splits train, validation
(or val) and test, and an unsplit DIR/<class>/<image> that is split here. Whatever is left
out (an unreadable file, a file in no class folder, a class folder with no readable image)
is named, with what to do about it. The user's files are only ever read.
"""
import hashlib
import warnings
from pathlib import Path

import pandas as pd

from pipeline import PipelineError
from pipeline.data.images import files_under, printable, unreadable
from pipeline.files import read_table

SPLIT_FOLDERS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
SPLITS = ("train", "validation", "test")
MANIFEST_COLUMNS = ("path", "split", "label", "sha256")
HELDOUT_SPLITS = ("test", "validation")  # the first one present is scored and reported


def find_images(data_dir):
    """Return (manifest, skipped): DataFrames of (path, split, label) and (path, reason).

    Paths are relative to `data_dir`, as seen through linked folders. In an unsplit folder the
    split is left empty for `content_split`, which needs the images' hashes. Files Pillow cannot
    decode, or whose names are not UTF-8, files outside any class folder and class folders left
    with no readable image go to `skipped` (paths there with \\xNN escapes, folders ending in /).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise PipelineError(
            f"data folder {data_dir} not found: set data.dir in params.yaml to a folder "
            "of <class>/<image> or <split>/<class>/<image>"
        )
    split_dirs = find_split_dirs(data_dir)
    if split_dirs:
        check_same_classes(split_dirs)
    folders = [(split, d) for split, folder in (split_dirs or {None: data_dir}).items() for d in class_dirs(folder)]
    files = pd.DataFrame([(file, split, d.name, d) for split, d in folders for file in files_under(d)],
                         columns=["file", "split", "label", "folder"])
    if files.empty:
        loose = len(direct_files(data_dir))
        raise PipelineError(
            f"no images in {data_dir}{f' but {loose} files directly in it' if loose else ''}: "
            f"expected {data_dir}/<class>/<image> or {data_dir}/train/<class>/<image>"
        )
    reasons = unreadable(files["file"])
    bad = files["file"].isin(list(reasons))
    skipped = pd.DataFrame({"path": relative(reasons, data_dir), "reason": list(reasons.values())})
    left_out = outside_class_folders(data_dir, split_dirs)
    left_out += empty_class_folders(data_dir, folders, readable=files.loc[~bad, "folder"])
    for path, reason in left_out:
        warnings.warn(f"skipping {path}: {reason}", stacklevel=2)
    skipped = pd.concat([skipped, pd.DataFrame(left_out, columns=["path", "reason"])], ignore_index=True)
    manifest = files[~bad].assign(path=lambda f: relative(f["file"], data_dir))
    manifest = manifest[["path", "split", "label"]].reset_index(drop=True)
    if manifest.empty or split_dirs and not (manifest["split"] == "train").any():
        raise PipelineError(f"no readable {'training ' if split_dirs else ''}images in {data_dir}: "
                            "the warnings above say why")
    return manifest, skipped


def outside_class_folders(data_dir, split_dirs):
    """(path, reason) of the files that lie where no class folder is, and of folders beside the split folders."""
    home = "data.dir/<split>/<class>/" if split_dirs else "data.dir/<class>/"
    found = [(file, f"it lies directly in data.dir, in no class folder, so it has no label: move it into {home} "
                    "or out of data.dir") for file in direct_files(data_dir)]
    for folder in split_dirs.values():
        found += [(file, f"it lies directly in {folder.name}/, in no class folder, so it has no label: move it "
                         f"into {folder.name}/<class>/ or out of data.dir") for file in direct_files(folder)]
    if split_dirs:
        others = [d for d in class_dirs(data_dir) if d.name.lower() not in SPLIT_FOLDERS]
        found += [(folder, f"not a split folder ({', '.join(SPLIT_FOLDERS)}) though data.dir is split, so its "
                           f"{len(files_under(folder))} files are left out: move them into a split folder or "
                           "the folder out of data.dir") for folder in others]
    return [(relative([path], data_dir)[0] + ("/" if path.is_dir() else ""), reason) for path, reason in found]


def empty_class_folders(data_dir, folders, readable):
    """(path, reason) of each class folder with no readable image, which would otherwise vanish without a word."""
    kept = set(readable)
    found = []
    for split, folder in folders:
        if folder in kept:
            continue
        count = len(files_under(folder))
        what = f"{count} file{'s' if count > 1 else ''}, none readable" if count else "empty"
        loss = f"class {folder.name!r} has no {split} images" if split else f"class {folder.name!r} is left out"
        found.append((relative([folder], data_dir)[0] + "/",
                      f"no readable image in this class folder ({what}), so {loss}: add images Pillow can read, "
                      "or remove the folder"))
    return found


def direct_files(folder):
    """The files (not hidden ones, and broken links too) lying directly in `folder`."""
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and (p.is_file() or not p.exists()))


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


def check_fractions(validation, test):
    """Raise PipelineError unless data.split's fractions can be held out (checked before any image is hashed)."""
    if validation < 0 or test < 0 or validation + test >= 1:
        raise PipelineError(
            "params.yaml: data.split.validation and data.split.test must be >= 0 "
            f"and add up to less than 1 (got {validation} and {test})"
        )


def content_split(manifest, copies, validation=0.0, test=0.2, seed=42):
    """The split of each image of an unsplit folder, decided by its content alone.

    Each image gets a place in [0, 1) (content_places): below `test` it is a test image, at or above
    1 - `validation` a validation image, else a training image. No other image takes part, so adding,
    removing or renaming images never moves one that was there, and raising one fraction only moves
    images between that split and train. The price: a class's counts are binomial around the
    fractions, not cut exactly (README, "Your own images").
    """
    check_fractions(validation, test)
    place = content_places(manifest, copies, seed)
    split = pd.Series("train", index=manifest.index)
    return split.mask(place < test, "test").mask(place >= 1 - validation, "validation")


def selection_images(manifest, copies, fraction, seed):
    """Whether each manifest row is a selection image: a training image at a place below `fraction`.

    Rows without CV (fine-tuning, the scratch CNN) neither fit nor stop on these, and every row is scored
    on them to choose among all rows (pipeline.report.selection). Drawn by content as content_split
    draws the split, from another salt, so the two draws are independent even from one seed, and adding
    images never moves another in or out.
    """
    place = content_places(manifest, copies, seed, salt="selection:")
    return (manifest["split"] == "train") & (place < fraction)


def content_places(manifest, copies, seed, salt=""):
    """Each image's uniform place in [0, 1) from a hash of `salt`, `seed` and its sha256 alone.

    Every image of a group of `copies` (pipeline.data.duplicates) takes the place of its group's
    smallest sha256, so copies stay on one side; an added copy of an image can therefore move it.
    """
    group_of = manifest["path"].map(dict(zip(copies["path"], copies["group"])))
    key = manifest["sha256"].where(group_of.isna(), manifest["sha256"].groupby(group_of).transform("min"))
    return key.map(lambda sha256: position(sha256, seed, salt))


def position(sha256, seed, salt=""):
    """A uniform number in [0, 1) from an image's sha256, a seed and a salt naming the draw."""
    digest = hashlib.sha256(f"{salt}{seed}:{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def relative(files, root):
    return [printable(Path(f).relative_to(root).as_posix()) for f in files]
