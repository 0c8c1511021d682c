"""The backbone over image files: each image's views (as it is, mirrored, augmented copies) as arrays.

An `Extractor` holds only its settings until `load`, so a Ray worker can receive it and load
the network itself. Its provenance needs no network (pipeline.features.digests), so a run that finds
every image in the per-image cache loads none.
"""
import hashlib
import json
from pathlib import Path

import numpy as np

from pipeline.data import augment
from pipeline.data.images import load_image
from pipeline.features import backbone, digests, engines, quantization
from pipeline.features.cache import provenance_digest

# Bump when decoding, resizing or preprocessing change: cached features then stop matching.
VERSION = 1
# Under an Extractor's cache_root: the engines' converted models, named after the provenance's digest as the
# per-image cache's folders are (and int8's calibration notes), and the weights digests taken from built networks
# (pipeline.features.digests).
ENGINE_MODELS = "engines"
WEIGHTS_DIGESTS = "weights"


class Extractor:
    """A registered backbone (pipeline.features.backbone) with its pooling, run by `engine` at `precision`:
    0-255 RGB images in, {output: array} out.

    `cache_root`: a folder where the engine's converted model and the weights digest are kept between
    runs, so that extracting a few new images converts nothing (None: nowhere, everything is done afresh).
    `calibration`: for int8, the quantization.Calibration to quantize on (`calibrated` gives a copy with it).
    `network`: for int8, the quantized network itself, as (.xml, .bin) bytes (`saved_network`), which is all a
    saved model has to predict with: the calibration images stay behind.
    """

    def __init__(self, weights, input_size, pooling, engine="keras", precision="fp32", backbone=backbone.DEFAULT,
                 cache_root=None, calibration=None, network=None):
        self.weights = weights
        self.input_size = input_size
        self.pooling = pooling
        self.engine = engine
        self.precision = precision
        self.backbone = backbone
        self.cache_root = cache_root
        self.calibration = calibration
        self.network = network

    def unloaded(self):
        """A copy holding only the settings: what a worker receives, to load there."""
        return Extractor(self.weights, self.input_size, self.pooling, self.engine, self.precision, self.backbone,
                         self.cache_root, self.calibration, self.network)

    def calibrated(self, keys, files):
        """A copy that quantizes on the calibration set of the training images `keys` (sha256) in `files`: the set
        noted under cache_root if all its images are still among them, else a new draw
        (pipeline.features.quantization)."""
        note = self.cache_root and (Path(self.cache_root) / ENGINE_MODELS /
                                    f"{provenance_digest(self.engine_provenance())}.calibration.json")
        copy = self.unloaded()
        copy.calibration = quantization.kept_or_drawn(note, keys, files)
        return copy

    def load(self):
        """Ready the network, once: the engine's model saved for this provenance, else the Keras model, converted
        (and saved). Runners call it only when the cache lacks something."""
        if hasattr(self, "run_"):
            return self
        if self.network:
            self.run_ = engines.openvino_saved(*self.network, self.precision)
            return self
        saved = self.saved_path()
        self.run_ = saved and engines.load_saved(saved, self.engine, self.precision)
        if not self.run_:
            base = backbone.conv_base(self.weights, self.input_size, self.backbone)
            self.weights_sha256_ = backbone.weights_digest(base)  # of what was loaded: predict checks it
            model = backbone.extractor(base, self.pooling, self.backbone)
            self.run_ = engines.compile_for(model, self.engine, self.precision, saved, self.calibration_images())
        return self

    def saved_path(self):
        """Where the engine's converted model is kept (no suffix: the engine adds its own), or None."""
        return self.cache_root and Path(self.cache_root) / ENGINE_MODELS / provenance_digest(self.provenance())

    def saved_network(self):
        """The engine's converted model as (.xml, .bin) bytes (OpenVINO's), converted now if none is kept yet."""
        path = Path(self.saved_path()).with_suffix(engines.SAVED_SUFFIX["openvino"])
        if not path.is_file():
            self.load()
        return path.read_bytes(), path.with_suffix(".bin").read_bytes()

    def calibration_images(self):
        """The calibration images, preprocessed as the network reads them (int8 only; else None)."""
        if self.precision != "int8":
            return None
        images = np.stack([load_image(file, self.input_size) for file in self.calibration.files])
        return backbone.preprocess(images, self.backbone)

    def weights_sha256(self):
        """backbone.weights_digest of the weights, from the loaded network or else from the weights file."""
        if not hasattr(self, "weights_sha256_"):
            notes = self.cache_root and Path(self.cache_root) / WEIGHTS_DIGESTS
            self.weights_sha256_ = digests.weights_sha256(self.weights, self.backbone, self.input_size, notes)
        return self.weights_sha256_

    def __call__(self, images):
        return self.run_(backbone.preprocess(images, self.backbone))  # engines give float32 arrays

    def provenance(self):
        """What produced the features (the weights by their digest), stored beside them and checked before reuse.

        For VGG16 it is what it was before other backbones came, so its cached features stay valid. int8's
        names its calibration set too: the quantized network depends on it.
        """
        if self.precision != "int8":
            return self.engine_provenance()
        if self.calibration is None:
            raise ValueError("an int8 Extractor's features depend on its calibration images: call calibrated() first")
        return {**self.engine_provenance(), **self.calibration.provenance()}

    def engine_provenance(self):
        """The provenance without the calibration set: what int8's calibration note is kept under."""
        return {
            "backbone": self.backbone,
            "weights_sha256": self.weights_sha256(),
            "input_size": self.input_size,
            "pooling": self.pooling,
            **engines.provenance(self.engine, self.precision),  # with the engine's version
            "preprocessing": backbone.get(self.backbone).preprocessing_text,
            "extraction_version": VERSION,
        }


def quantized(network, input_size, pooling, name):
    """An Extractor of a quantized network as Extractor.saved_network gives it: what a saved model predicts with."""
    return Extractor(None, input_size, pooling, "openvino", "int8", name, network=network)


class View:
    """One way of showing every image to the network; its arrays are stored as <output><suffix>."""

    def __init__(self, suffix, copies=None):
        self.suffix = suffix
        self.copies = copies

    @property
    def id(self):
        """The view's name in the per-image cache: the augmented one names its settings, which decide the copies."""
        if self.copies is None:
            return self.suffix.strip("_") or "image"
        settings = {"count": self.copies.count, "seed": self.copies.seed, "flip": bool(self.copies.flip),
                    "factors": self.copies.factors.tolist()}
        return f"augmented-{hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]}"

    def __call__(self, extractor, images, keys):
        """{output: (n, ...)} arrays, or (n, copies, ...) for augmented copies, of n images with sha256 `keys`."""
        if self.copies is None:
            return extractor(augment.mirror(images) if self.suffix else images)
        extra = self.copies(images, keys)
        flat = extractor(extra.reshape(-1, *images.shape[1:]))
        return {name: array.reshape(len(images), self.copies.count, *array.shape[1:]) for name, array in flat.items()}


IMAGE = View("")
FLIPPED = View("_flipped")


def views(copies=None, mirrored=False):
    """The views a split needs: the images, their augmented copies (if `copies` makes any), their mirror images."""
    return [IMAGE] + ([View("_augmented", copies)] if copies is not None and copies.count else []) + (
        [FLIPPED] if mirrored else [])


def batches(extractor, view, files, keys, batch_size):
    """Yield (keys, {output: array}) for `files` one batch at a time, so memory stays flat."""
    for start in range(0, len(files), batch_size):
        images = np.stack([load_image(f, extractor.input_size) for f in files[start:start + batch_size]])
        batch_keys = keys[start:start + batch_size]
        yield batch_keys, view(extractor, images, batch_keys)


def arrays(extractor, view, files, keys, batch_size):
    """{output: array} of one view of all `files`, computed batch by batch."""
    return joined([outputs for _, outputs in batches(extractor, view, files, keys, batch_size)])


def joined(parts):
    """One {output: array} of batches' {output: array}, in order."""
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def fill_shard(tasks, files, keys, batch_size):
    """Compute one shard of images into the caches: the unit of work of every runner.

    `tasks`: (extractor, cache, view, the keys whose view that cache lacks) for each backbone and view with
    something to compute. Each of the shard's images (`files`, their `keys`) is decoded once for all of them:
    decoding costs as much as MobileNetV2's whole pass (benchmarks/results.md, run 9).
    """
    images = np.stack([load_image(f, tasks[0][0].input_size) for f in files])  # one input size for every backbone
    row = dict(zip(keys, range(len(keys))))
    for extractor, cache, view, needed in tasks:
        chosen = images[[row[key] for key in needed]]
        extractor.load()
        cache.add(view.id, needed, joined([view(extractor, chosen[start:start + batch_size],
                                                needed[start:start + batch_size])
                                           for start in range(0, len(needed), batch_size)]))
