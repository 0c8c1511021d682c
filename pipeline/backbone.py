"""The VGG16 convolutional base that turns images into bottleneck features."""
import hashlib
import os
import warnings
from pathlib import Path

import keras
import numpy as np

from pipeline import PipelineError

IMAGENET = "imagenet"
# Points weights="imagenet" at a local copy of the official file, for machines with no network.
WEIGHTS_ENV = "VGG16_IMAGENET_WEIGHTS"
PREPROCESSING = "keras.applications.vgg16.preprocess_input (RGB to BGR, ImageNet mean subtracted)"
MIN_INPUT_SIZE = 32  # VGG16 halves the image five times


def weights_source(weights):
    """What VGG16 should load for backbone.weights: 'imagenet' (a download) or a local file."""
    if weights == IMAGENET:
        local = os.environ.get(WEIGHTS_ENV)
        if not local:
            return IMAGENET
        weights, origin = local, f"${WEIGHTS_ENV}"
    else:
        origin = "backbone.weights in params.yaml"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise PipelineError(f"VGG16 weights file {path} (from {origin}) not found: fix the path")
    return str(path)


def build(weights, input_size, pooling):
    """VGG16 without its classifier, ending in a flat feature vector per image."""
    if input_size < MIN_INPUT_SIZE:
        raise PipelineError(
            f"params.yaml: backbone.input_size is {input_size}; VGG16 needs at least {MIN_INPUT_SIZE}"
        )
    source = weights_source(weights)
    try:
        with warnings.catch_warnings():
            # Keras only warns when a weights file does not match the layers, leaving them random.
            warnings.simplefilter("error", UserWarning)
            base = keras.applications.VGG16(
                include_top=False,
                weights=source,
                input_shape=(input_size, input_size, 3),
                pooling=None if pooling == "flatten" else pooling,
            )
    except Exception as exc:
        raise PipelineError(weights_error(source, exc)) from exc
    if pooling != "flatten":
        return base
    return keras.Sequential([base, keras.layers.Flatten()], name="vgg16_flatten")


def weights_error(source, exc):
    reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
    if source == IMAGENET:
        return (
            f"could not download the ImageNet VGG16 weights ({reason}). Offline? Set "
            f"{WEIGHTS_ENV}=/path/to/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5, "
            "or backbone.weights in params.yaml to a local weights file"
        )
    return f"could not load VGG16 conv-base weights from {source} ({reason}): is it the notop file?"


def weights_digest(model):
    """sha256 of the weight values: the same numbers hash the same, whatever file they came from."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def preprocess(images):
    return keras.applications.vgg16.preprocess_input(images)
