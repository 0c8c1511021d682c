"""Bottleneck features: VGG16 over every image, streamed in batches into one HDF5 per split.

Each file holds, per image, the pooled features and block 4's output (what fine-tuning
starts from), and optionally the same for augmented copies (`<name>_augmented`, training
split) and for the mirror image (`<name>_flipped`, for test-time augmentation).
"""
import json
import time
from dataclasses import dataclass

import h5py
import numpy as np
from tqdm import tqdm

from pipeline import PipelineError, augment, backbone
from pipeline.files import atomic_path
from pipeline.images import load_image


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
        """(images, 1 + copies, ...): each image's own row first, then its augmented copies."""
        if self.augmented is None:
            return self.X[:, None]
        return np.concatenate([self.X[:, None], self.augmented], axis=1)


def run(model, images):
    """{output name: float32 array} for one batch of 0-255 RGB images."""
    out = model.predict_on_batch(backbone.preprocess(images))
    if not isinstance(out, dict):
        out = {"features": out}
    return {name: np.asarray(array, dtype=np.float32) for name, array in out.items()}


def iter_batches(model, files, input_size, batch_size, desc=None, copies=None, keys=None, mirrored=False):
    """Yield {name: array} for `files`, one batch at a time, so memory stays flat.

    `copies` (an augment.Copies) adds `<name>_augmented`, drawn for each file from its entry in
    `keys` (the sha256 of the file); `mirrored` adds `<name>_flipped`.
    """
    with tqdm(total=len(files), desc=desc, unit="img", disable=desc is None, mininterval=5) as progress:
        for start in range(0, len(files), batch_size):
            batch = files[start:start + batch_size]
            images = np.stack([load_image(f, input_size) for f in batch])
            arrays = run(model, images)
            if mirrored:
                arrays |= {f"{k}_flipped": v for k, v in run(model, augment.mirror(images)).items()}
            if copies is not None and copies.count:
                extra = copies(images, keys[start:start + batch_size])
                flat = run(model, extra.reshape(-1, *images.shape[1:]))
                arrays |= {f"{k}_augmented": v.reshape(len(batch), copies.count, *v.shape[1:])
                           for k, v in flat.items()}
            yield arrays
            progress.update(len(batch))


def describe(model, backbone_params):
    """What produced the features, stored beside them and checked before they are reused."""
    return {
        "backbone": "vgg16",
        "weights": backbone_params["weights"],
        "weights_sha256": backbone.weights_digest(model),
        "input_size": backbone_params["input_size"],
        "pooling": backbone_params["pooling"],
        "preprocessing": backbone.PREPROCESSING,
    }


def write_split(path, model, files, labels, rel_paths, classes, meta, batch_size,
                copies=None, keys=None, mirrored=False):
    """Extract one split into `path`; returns source images per second."""
    start = time.perf_counter()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        row = 0
        batches = iter_batches(model, files, meta["input_size"], batch_size, path.stem, copies, keys, mirrored)
        for arrays in batches:
            for name, array in arrays.items():
                if name not in h5:
                    h5.create_dataset(name, shape=(len(files), *array.shape[1:]), dtype="float32")
                h5[name][row:row + len(array)] = array
            row += len(array)
        h5["labels"] = np.asarray(labels, dtype=np.int64)
        h5["paths"] = np.asarray(rel_paths, dtype=h5py.string_dtype())
        seconds = time.perf_counter() - start
        h5.attrs.update(meta)
        h5.attrs["classes"] = json.dumps(classes)
        h5.attrs["augmented_copies"] = copies.count if copies is not None else 0
        h5.attrs["seconds"] = seconds
    return len(files) / seconds if seconds else float("nan")


def read(path, name="features"):
    """The `name` arrays of a split (features, or block4_pool for fine-tuning) with labels and paths."""
    try:
        with h5py.File(path, "r") as h5:
            attrs = dict(h5.attrs)
            optional = {view: h5[f"{name}_{view}"][:] for view in ("augmented", "flipped")
                        if f"{name}_{view}" in h5}
            return Features(
                X=h5[name][:],
                y=h5["labels"][:],
                paths=[p.decode() for p in h5["paths"][:]],
                classes=json.loads(attrs.pop("classes")),
                meta=attrs,
                **optional,
            )
    except (OSError, KeyError) as exc:
        raise PipelineError(f"cannot read {name} from {path} ({exc}): run `dvc repro features`") from exc


def read_meta(path):
    """The attributes of a features file and its image count, without loading the arrays."""
    with h5py.File(path, "r") as h5:
        return {**h5.attrs, "images": len(h5["labels"])}
