"""The convolutional bases that turn images into features: a registry of keras.applications networks.

Everything the pipeline knows about a network is its entry in BACKBONES (params.yaml's backbone.name
picks one); nothing else names one, so adding a network is adding an entry. Importing this module
loads no TensorFlow: the networks are built by name when needed.
"""
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import PipelineError

IMAGENET = "imagenet"
# Untrained weights from a fixed seed: for tests and plumbing checks with no download. Their features
# are near-meaningless for classification.
RANDOM = "random"
RANDOM_SEED = 0
# The name of every backbone's intermediate output in the features files and the per-image cache
# (`layer: intermediate` heads read it, fine-tuning starts from it), whatever the network calls that layer.
INTERMEDIATE = "intermediate"
# Its name in caches written before it had one of its own (VGG16's layer): read as INTERMEDIATE
# (pipeline.features.cache), so that images cached then are not extracted again.
RENAMED_OUTPUTS = {"block4_pool": INTERMEDIATE}


@dataclass(frozen=True)
class Backbone:
    """One keras.applications network as the pipeline uses it.

    Changing an existing entry's layers or preprocessing changes its features without changing
    their provenance: bump pipeline.features.extraction.VERSION then, so cached features are recomputed.
    """

    name: str  # backbone.name in params.yaml
    constructor: str  # the keras.applications function that builds it
    preprocessing: str  # the keras.applications module whose preprocess_input takes its 0-255 RGB images
    preprocessing_does: str  # what that does, in words, recorded with the features
    intermediate: str  # the layer whose output is cached: `layer: intermediate` heads read it averaged over
    # positions, and fine-tuning starts from it, so the layers before it stay frozen
    tuned_from: str  # the first layer fine-tuning trains (together with all after it)
    min_input_size: int = 32  # each network here halves the image five times
    # backbone.pooling: auto's choice, the pooling its own ImageNet classifier starts with: VGG16 flattens its
    # small map into fully connected layers, the later networks average theirs (and have many more channels)
    pooling: str = "avg"

    @property
    def weights_env(self):
        """The environment variable that points weights: imagenet at a local copy of the official file."""
        return f"{self.name.upper()}_IMAGENET_WEIGHTS"

    @property
    def preprocessing_text(self):
        return f"keras.applications.{self.preprocessing}.preprocess_input ({self.preprocessing_does})"


BACKBONES = {entry.name: entry for entry in (
    Backbone("vgg16", "VGG16", "vgg16", "RGB to BGR, ImageNet mean subtracted",
             intermediate="block4_pool", tuned_from="block5_conv1", pooling="flatten"),  # fine-tuning trains block 5
    Backbone("resnet50v2", "ResNet50V2", "resnet_v2", "scaled to -1..1",
             intermediate="conv4_block6_out", tuned_from="conv5_block1_preact_bn"),  # stage conv5
    Backbone("efficientnetv2b0", "EfficientNetV2B0", "efficientnet_v2", "none: the network rescales its input",
             intermediate="block5e_add", tuned_from="block6a_expand_conv"),  # block 6 and the top conv
    Backbone("convnext_tiny", "ConvNeXtTiny", "convnext", "none: the network normalises its input",
             # stage 3, after its downsampling: stage 2's last output is an add that is not a layer
             intermediate="convnext_tiny_downsampling_block_2",
             tuned_from="convnext_tiny_stage_3_block_0_depthwise_conv"),
    Backbone("densenet121", "DenseNet121", "densenet", "scaled to 0..1, ImageNet mean and std normalised",
             intermediate="pool4_pool", tuned_from="conv5_block1_0_bn"),  # dense block 5 after the last transition
    Backbone("mobilenetv2", "MobileNetV2", "mobilenet_v2", "scaled to -1..1",
             intermediate="block_12_add", tuned_from="block_13_expand"),  # blocks 13-16 (the last stride) and Conv_1
)}
DEFAULT = "vgg16"
AUTO = "auto"  # backbone.pooling: each backbone's own (Backbone.pooling)
WEIGHTS_ENV = BACKBONES[DEFAULT].weights_env  # VGG16_IMAGENET_WEIGHTS


def get(name):
    """The registry entry of backbone.name, or an error listing the choices."""
    if name not in BACKBONES:
        raise PipelineError(f"params.yaml: backbone.name is {name!r}; use one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def names(setting):
    """The backbones of backbone.name: one name, or a list of them, whose features are fused
    (pipeline.features.fusion), each checked against the registry."""
    listed = [setting] if isinstance(setting, str) else list(setting)
    if not listed:
        raise PipelineError("params.yaml: backbone.name is an empty list; name one backbone or more, e.g. vgg16")
    twice = sorted({name for name in listed if listed.count(name) > 1})
    if twice:
        raise PipelineError(f"params.yaml: backbone.name lists {', '.join(twice)} twice; list each backbone once")
    return [get(name).name for name in listed]


def pooling_for(setting, name=DEFAULT):
    """backbone.pooling for the backbone `name`: the setting itself, or for `auto` the registry's choice."""
    return get(name).pooling if setting == AUTO else setting


def weights_source(weights, name=DEFAULT):
    """What the network should load for backbone.weights: 'imagenet' (a download), 'random', or a local file."""
    if weights == RANDOM:
        return RANDOM
    if weights == IMAGENET:
        env = get(name).weights_env
        local = os.environ.get(env)
        if not local:
            return IMAGENET
        weights, origin = local, f"${env}"
    else:
        origin = "backbone.weights in params.yaml"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise PipelineError(f"{name} weights file {path} (from {origin}) not found: fix the path")
    return str(path)


def conv_base(weights, input_size, name=DEFAULT):
    """The network without its classifier, for (input_size, input_size, 3) images.

    weights 'random' reseeds Keras's random generators (RANDOM_SEED), so every process draws the
    same weights: the feature cache, fine-tuning and predict recognise them by their digest.
    """
    from pipeline.quiet_keras import keras

    entry = get(name)
    if input_size < entry.min_input_size:
        raise PipelineError(
            f"params.yaml: backbone.input_size is {input_size}; {name} needs at least {entry.min_input_size}"
        )
    source = weights_source(weights, name)
    if source == RANDOM:
        keras.utils.set_random_seed(RANDOM_SEED)
    try:
        with warnings.catch_warnings():
            # Keras only warns when a weights file does not match the layers, leaving them random.
            warnings.simplefilter("error", UserWarning)
            # MobileNetV2 warns that it loads its 224-px ImageNet weights at any other size: convolutions are
            # the same at every size, so that is what is wanted.
            warnings.filterwarnings("ignore", message=".*input_shape. is undefined or non-square", category=UserWarning)
            return getattr(keras.applications, entry.constructor)(
                include_top=False, weights=None if source == RANDOM else source,
                input_shape=(input_size, input_size, 3),
            )
    except Exception as exc:
        raise PipelineError(weights_error(entry, source, exc)) from exc


def pooling_layer(pooling):
    """The layer that turns the last feature map into one vector per image."""
    from pipeline.quiet_keras import keras

    return {
        "flatten": keras.layers.Flatten,
        "avg": keras.layers.GlobalAveragePooling2D,
        "max": keras.layers.GlobalMaxPooling2D,
    }[pooling](name=f"{pooling}_pooling")


def build(weights, input_size, pooling, name=DEFAULT):
    """The network without its classifier, ending in a flat feature vector per image."""
    from pipeline.quiet_keras import keras

    base = conv_base(weights, input_size, name)
    return keras.Model(base.input, pooling_layer(pooling)(base.output), name=f"{name}_{pooling}")


def extractor(base, pooling, name=DEFAULT):
    """One pass that yields both the pooled features and the intermediate output (cached for fine-tuning)."""
    from pipeline.quiet_keras import keras

    intermediate = base.get_layer(get(name).intermediate).output
    outputs = {"features": pooling_layer(pooling)(base.output), INTERMEDIATE: intermediate}
    return keras.Model(base.input, outputs, name=f"{name}_extractor")


def top_block(base, name=DEFAULT):
    """Everything after the intermediate layer, as a model of its output: what fine-tuning runs.

    The same layer objects as `base` (Keras builds a model between two inner tensors of a graph),
    so training this model trains `base` too.
    """
    from pipeline.quiet_keras import keras

    return keras.Model(base.get_layer(get(name).intermediate).output, base.output, name=f"{name}_top")


def tuned_layers(base, name=DEFAULT):
    """The layers fine-tuning trains: from tuned_from on, but batch normalisation.

    Batch normalisation stays frozen in inference mode, as Keras advises for fine-tuning: its
    statistics from a few small batches would replace ImageNet's and shift every later layer.
    """
    from pipeline.quiet_keras import keras

    start = base.layers.index(base.get_layer(get(name).tuned_from))
    return [layer for layer in base.layers[start:] if not isinstance(layer, keras.layers.BatchNormalization)]


def weights_error(entry, source, exc):
    reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
    if source == IMAGENET:
        return (
            f"could not download the ImageNet {entry.name} weights ({reason}). Offline? Set "
            f"{entry.weights_env}=/path/to/its keras.applications notop .h5 file, "
            "or backbone.weights in params.yaml to a local weights file"
        )
    return f"could not load {entry.name} conv-base weights from {source} ({reason}): is it the notop file?"


def weights_digest(model):
    """sha256 of the weight values: the same numbers hash the same, whatever file they came from."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def preprocessing_function(name=DEFAULT):
    """The network's own preprocess_input: 0-255 RGB arrays or Keras tensors in, what it expects out."""
    from pipeline.quiet_keras import keras

    return getattr(keras.applications, get(name).preprocessing).preprocess_input


# What each keras.applications module's preprocess_input does to a NumPy array (keras's imagenet_utils modes;
# None: nothing, the network rescales its input itself), and the channel means and deviations of those modes.
NUMPY_MODES = {"vgg16": "caffe", "resnet_v2": "tf", "mobilenet_v2": "tf", "densenet": "torch",
               "efficientnet_v2": None, "convnext": None}
CAFFE_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)  # BGR
TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(images, name=DEFAULT):
    """0-255 RGB arrays as the network's preprocess_input leaves them, float32, the caller's array untouched.

    Keras's own NumPy arithmetic for them, step by step and in float32 (equal to the bit: tests/test_backbone.py),
    written here so that extracting features with the engine's model cached loads no TensorFlow (about 6 s).
    """
    x = np.array(images, dtype=np.float32)  # a copy: the caller may reuse `images`
    mode = NUMPY_MODES[get(name).preprocessing]
    if mode == "tf":
        x /= 127.5
        x -= 1.0
    elif mode == "torch":
        x /= 255.0
        channel_by_channel(np.subtract, x, TORCH_MEAN)
        channel_by_channel(np.divide, x, TORCH_STD)
    elif mode == "caffe":
        x = x[..., ::-1]
        channel_by_channel(np.subtract, x, CAFFE_MEAN)
    return x


def channel_by_channel(operation, x, values):
    """x[..., c] = operation(x[..., c], values[c]) in place: as Keras does it, and 5x faster than broadcasting
    `values` over a mirrored array (caffe's BGR view)."""
    for channel, value in enumerate(values):
        operation(x[..., channel], value, out=x[..., channel])
