"""The features files the heads read: one HDF5 per split, assembled from the per-image cache.

Each file holds, per image, the pooled features and the backbone's intermediate output
(what fine-tuning starts from), and optionally the same for augmented copies (`<name>_augmented`, training
split) and for the mirror image (`<name>_flipped`, for test-time augmentation). The training
split may also hold the mirror images of a sample of its images (`features_flipped_sample`, the
rows in `flipped_sample_rows`): what the report's flip check compares them with, so that no
warning is drawn from held-out images; and, extracted in int8, the quantized networks
(`int8_networks`). Its attributes say what produced them, and `seconds` how
long this run took to extract and write them.
"""
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace

import h5py
import numpy as np

from pipeline import PipelineError, paths
from pipeline.data import catalog
from pipeline.files import atomic_path

SAMPLE_ROWS = "flipped_sample_rows"
# The training file's group of int8 networks, each backbone's quantized model as OpenVINO's .xml and .bin bytes:
# the only copy a head's saved model can take along (pipeline.features.quantization).
NETWORKS = "int8_networks"
# Enough for the flip check's 5-fold CV to see a drop of 10 points, few enough to extract in a minute.
MIRROR_SAMPLE = 200


@dataclass
class Features:
    X: np.ndarray  # (images, ...) one row per image
    y: np.ndarray  # indices into classes
    paths: list
    classes: list
    meta: dict
    augmented: np.ndarray | None = None  # (images, copies, ...)
    flipped: np.ndarray | None = None  # (images, ...) of the mirror images

    def views(self):
        """(images, 1 + copies, ...): each image's own row first, then its augmented copies.

        X and augmented become parts of the array returned, so that a split's rows are in memory once, not twice.
        """
        if self.augmented is None:
            return self.X[:, None]
        views = np.concatenate([self.X[:, None], self.augmented], axis=1)
        self.X, self.augmented = views[:, 0], views[:, 1:]
        return views


def write(path, chunks, labels, rel_paths, classes, meta, started, extra=None):
    """Write one split from `chunks` ({name: rows} in image order); `started` is when its extraction began.

    `extra`: {name: array} stored as they are (the mirror sample).
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for name, array in (extra or {}).items():
            h5[name] = array
        row = 0
        for arrays in chunks:
            for name, array in arrays.items():
                if name not in h5:
                    h5.create_dataset(name, shape=(len(labels), *array.shape[1:]), dtype="float32")
                h5[name][row:row + len(array)] = array
            row += len(next(iter(arrays.values())))
        h5["labels"] = np.asarray(labels, dtype=np.int64)
        h5["paths"] = np.asarray(rel_paths, dtype=h5py.string_dtype())
        h5.attrs.update(meta)
        h5.attrs["classes"] = json.dumps(classes)
        h5.attrs["seconds"] = time.perf_counter() - started


def network_datasets(networks):
    """write's `extra` for {backbone: (.xml bytes, .bin bytes)} of quantized networks."""
    return {f"{NETWORKS}/{name}/{part}": np.frombuffer(data, dtype=np.uint8)
            for name, files in networks.items() for part, data in zip(("xml", "bin"), files)}


def read_networks(path):
    """{backbone: (.xml bytes, .bin bytes)} of the quantized networks a features file holds: {} where none."""
    with h5py.File(path, "r") as h5:
        group = h5.get(NETWORKS, {})
        return {name: (group[name]["xml"][:].tobytes(), group[name]["bin"][:].tobytes()) for name in group}


def read(path, name="features"):
    """The `name` arrays of a split (features, or the intermediate output for fine-tuning) with labels and paths."""
    with opened(path, name) as split:
        return replace(split, **{view: None if array is None else array[:] for view, array in
                                 (("X", split.X), ("augmented", split.augmented), ("flipped", split.flipped))})


@contextmanager
def opened(path, name="features"):
    """What read gives, but the arrays left in the file while open: h5py datasets, read as they are indexed.

    Fine-tuning reads them a batch at a time (pipeline.modeling.networks.Views), so its memory does not
    grow with the images.
    """
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise unreadable(path, name, exc) from exc
    with h5:
        try:
            attrs = dict(h5.attrs)
            split = Features(X=h5[name], y=h5["labels"][:], paths=[p.decode() for p in h5["paths"][:]],
                             classes=json.loads(attrs.pop("classes")), meta=attrs,
                             augmented=h5.get(f"{name}_augmented"), flipped=h5.get(f"{name}_flipped"))
        except KeyError as exc:
            raise unreadable(path, name, exc) from exc
        yield split


def unreadable(path, name, exc):
    return PipelineError(f"cannot read {name} from {path} ({exc}): run `dvc repro features`")


def mirror_sample_rows(keys, size=MIRROR_SAMPLE):
    """The rows of up to `size` images with different contents: the smallest sha256 `keys`, sorted.

    A hash picks them, so the sample is the same on every run and changes little when images are
    added: their mirror images mostly come from the per-image cache.
    """
    first_row = {}
    for row, key in enumerate(keys):
        first_row.setdefault(key, row)
    return np.sort([first_row[key] for key in sorted(first_row)[:size]]).astype(np.int64)


def mirror_sample(path, name="features"):
    """(arrays, their mirror images' arrays, labels) of a split's mirror sample; None where it has none."""
    with h5py.File(path, "r") as h5:
        if SAMPLE_ROWS not in h5:
            return None
        rows = h5[SAMPLE_ROWS][:]
        return h5[name][rows], h5[f"{name}_flipped_sample"][:], h5["labels"][:][rows]


def read_meta(path):
    """The attributes of a features file and its image count, without loading the arrays."""
    with h5py.File(path, "r") as h5:
        return {**h5.attrs, "images": len(h5["labels"])}


def heldout_file():
    """The features file of the split that results are reported on, or None if there is none."""
    split = catalog.heldout_split(s for s in catalog.SPLITS if paths.features_file(s).exists())
    return split and paths.features_file(split)
