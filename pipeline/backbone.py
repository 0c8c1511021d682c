"""The VGG16 convolutional base that turns images into bottleneck features."""
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.quiet_keras import keras

IMAGENET = "imagenet"
# Points weights="imagenet" at a local copy of the official file, for machines with no network.
WEIGHTS_ENV = "VGG16_IMAGENET_WEIGHTS"
PREPROCESSING = "keras.applications.vgg16.preprocess_input (RGB to BGR, ImageNet mean subtracted)"
MIN_INPUT_SIZE = 32  # VGG16 halves the image five times
BLOCK4 = "block4_pool"  # the last frozen layer when fine-tuning block 5


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


def conv_base(weights, input_size):
    """VGG16's 13 conv layers and 5 pools, without its classifier."""
    if input_size < MIN_INPUT_SIZE:
        raise PipelineError(
            f"params.yaml: backbone.input_size is {input_size}; VGG16 needs at least {MIN_INPUT_SIZE}"
        )
    source = weights_source(weights)
    try:
        with warnings.catch_warnings():
            # Keras only warns when a weights file does not match the layers, leaving them random.
            warnings.simplefilter("error", UserWarning)
            return keras.applications.VGG16(
                include_top=False, weights=source, input_shape=(input_size, input_size, 3)
            )
    except Exception as exc:
        raise PipelineError(weights_error(source, exc)) from exc


def pooling_layer(pooling):
    """The layer that turns the last feature map into one vector per image."""
    return {
        "flatten": keras.layers.Flatten,
        "avg": keras.layers.GlobalAveragePooling2D,
        "max": keras.layers.GlobalMaxPooling2D,
    }[pooling](name=f"{pooling}_pooling")


def build(weights, input_size, pooling):
    """VGG16 without its classifier, ending in a flat feature vector per image."""
    base = conv_base(weights, input_size)
    return keras.Model(base.input, pooling_layer(pooling)(base.output), name=f"vgg16_{pooling}")


def extractor(base, pooling):
    """One pass that yields both the bottleneck features and block 4's output (cached for fine-tuning)."""
    outputs = {"features": pooling_layer(pooling)(base.output), BLOCK4: base.get_layer(BLOCK4).output}
    return keras.Model(base.input, outputs, name="vgg16_extractor")


def top_block(base):
    """Block 5 as a model of its own that takes block 4's output: the part fine-tuning trains."""
    start = keras.Input(base.get_layer(BLOCK4).output.shape[1:], name="block4_output")
    x = start
    for layer in base.layers[base.layers.index(base.get_layer(BLOCK4)) + 1:]:
        x = layer(x)  # the same layer objects: training this model trains `base` too
    return keras.Model(start, x, name="block5")


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
    # preprocess_input subtracts the mean in place: work on a copy, the caller may reuse `images`.
    return keras.applications.vgg16.preprocess_input(np.array(images, dtype=np.float32))
