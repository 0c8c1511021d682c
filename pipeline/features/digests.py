"""A backbone's weights digest (backbone.weights_digest) without loading TensorFlow, so that a run whose
features are all in the per-image cache never builds a network.

Keras's own HDF5 layout (the official notop files, `weights: imagenet`'s download, a Keras 2 save)
lists the layers and each one's weights in the order Keras loads them into the network: hashing them
in that order gives backbone.weights_digest's value exactly. Any other weights (`random`, a Keras 3
`.weights.h5`, whose groups come in alphabetical order) are digested from the built network once,
then read from a note under the cache, found by what decides them: the file's bytes (sha256), or the
seed and the Keras and TensorFlow versions that draw random weights.
"""
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

import h5py
import numpy as np

from pipeline.features import backbone
from pipeline.files import write_json

# Where Keras keeps what `weights: imagenet` downloads, and the file each network downloads, for the
# sizes the pipeline uses (MobileNetV2 has a file for each of a few sizes, and takes the 224-px one
# at any other: tests/test_digests.py checks these names against keras.applications).
KERAS_DOWNLOADS = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
MOBILENETV2_SIZES = (96, 128, 160, 192, 224)
IMAGENET_FILES = {
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet50v2": "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "efficientnetv2b0": "efficientnetv2-b0_notop.h5",
    "convnext_tiny": "convnext_tiny_notop.h5",
    "densenet121": "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
# The distributions TensorFlow comes in: the one installed decides random weights with Keras.
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel")


def weights_sha256(source, name, input_size, notes=None):
    """backbone.weights_digest of the network `name` loads for `source` (backbone.weights_source's answer).

    `notes`: the folder of digests taken from built networks (None: build the network every time).
    """
    path = imagenet_download(name, input_size) if source == backbone.IMAGENET else source
    if source == backbone.IMAGENET and not path.is_file():  # building the network downloads it
        return built_digest(source, name, input_size)
    digest = None if path == backbone.RANDOM else keras_layout_digest(path)
    if digest:
        return digest
    if notes is None:
        return built_digest(source, name, input_size)
    note = Path(notes) / f"{note_key(name, input_size, path)}.json"
    if note.is_file():
        return json.loads(note.read_text())["weights_sha256"]
    digest = built_digest(source, name, input_size)
    write_json(note, {"backbone": name, "weights": str(path), "weights_sha256": digest})
    return digest


def built_digest(source, name, input_size):
    return backbone.weights_digest(backbone.conv_base(source, input_size, name))  # loads TensorFlow


def imagenet_download(name, input_size):
    """Where Keras keeps the ImageNet weights of `name` once it has downloaded them."""
    if name == "mobilenetv2":
        rows = input_size if input_size in MOBILENETV2_SIZES else 224
        file = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    else:
        file = IMAGENET_FILES[name]
    return KERAS_DOWNLOADS / file


def keras_layout_digest(path):
    """The digest of a file in Keras's HDF5 layout (weights only, or a whole model's); None for other files."""
    with h5py.File(path, "r") as h5:
        group = h5["model_weights"] if "model_weights" in h5 else h5
        if "layer_names" not in group.attrs:
            return None
        digest = hashlib.sha256()
        for layer in group.attrs["layer_names"]:
            weights = group[text(layer)]
            for weight in weights.attrs.get("weight_names", []):
                digest.update(np.ascontiguousarray(weights[text(weight)][()], dtype=np.float32).tobytes())
        return digest.hexdigest()


def text(name):
    return name.decode() if isinstance(name, bytes) else str(name)


def note_key(name, input_size, path):
    """What decides the weights of a network Keras builds: a file by its bytes, random ones by the seed and versions."""
    if path == backbone.RANDOM:
        decided = [backbone.RANDOM_SEED, input_size, installed("keras"), installed(*TENSORFLOW_DISTRIBUTIONS)]
    else:
        decided = [file_sha256(path)]
    return hashlib.sha256(json.dumps([name, *decided]).encode()).hexdigest()[:16]


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed(*distributions):
    """The version of the first of `distributions` installed, without importing it."""
    for distribution in distributions:
        try:
            return f"{distribution} {importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
