"""Bottleneck features: VGG16 over every image, streamed in batches into one HDF5 per split."""
import json
import time
from dataclasses import dataclass

import h5py
import numpy as np
from tqdm import tqdm

from pipeline import PipelineError, backbone
from pipeline.images import load_image
from pipeline.files import atomic_path


@dataclass
class Features:
    X: np.ndarray
    y: np.ndarray  # indices into classes
    paths: list
    classes: list
    meta: dict


def iter_batches(model, files, input_size, batch_size, desc=None):
    """Yield the features of `files`, one batch at a time, so memory stays flat."""
    with tqdm(total=len(files), desc=desc, unit="img", disable=desc is None, mininterval=5) as progress:
        for start in range(0, len(files), batch_size):
            batch = files[start:start + batch_size]
            images = np.stack([load_image(f, input_size) for f in batch])
            yield np.asarray(model.predict_on_batch(backbone.preprocess(images)), dtype=np.float32)
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


def write_split(path, model, files, labels, rel_paths, classes, meta, batch_size):
    """Extract the features of one split into `path`; returns images per second."""
    start = time.perf_counter()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        dim = model.output_shape[-1]
        out = h5.create_dataset("features", shape=(len(files), dim), dtype="float32")
        row = 0
        batches = iter_batches(model, files, meta["input_size"], batch_size, desc=path.stem)
        for batch in batches:
            out[row:row + len(batch)] = batch
            row += len(batch)
        h5["labels"] = np.asarray(labels, dtype=np.int64)
        h5["paths"] = np.asarray(rel_paths, dtype=h5py.string_dtype())
        seconds = time.perf_counter() - start
        h5.attrs.update(meta)
        h5.attrs["classes"] = json.dumps(classes)
        h5.attrs["seconds"] = seconds
    return len(files) / seconds if seconds else float("nan")


def read(path):
    try:
        with h5py.File(path, "r") as h5:
            attrs = dict(h5.attrs)
            return Features(
                X=h5["features"][:],
                y=h5["labels"][:],
                paths=[p.decode() for p in h5["paths"][:]],
                classes=json.loads(attrs.pop("classes")),
                meta=attrs,
            )
    except (OSError, KeyError) as exc:
        raise PipelineError(f"cannot read features from {path} ({exc}): run `dvc repro features`") from exc


def read_meta(path):
    """The attributes of a features file and its image count, without loading the arrays."""
    with h5py.File(path, "r") as h5:
        return {**h5.attrs, "images": len(h5["labels"])}
