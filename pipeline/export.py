"""Write the report's chosen row as one ONNX file: python -m pipeline.export [--out FILE] [--model MODEL ...]

The file needs neither this package nor TensorFlow: ONNX Runtime (or any ONNX runtime) runs it. Its one
input, `images`, is a batch of RGB pixels, float32 in 0-255, (n, size, size, 3), each image resized to a
square by Pillow's bilinear filter as pipeline.data.images.load_image does; its one output, `probabilities`,
(n, classes). The metadata says `classes` (a JSON list, in the columns' order) and `input_size`.
Inside is everything `predict` does after loading the pixels: the backbone's preprocessing and the
backbone (for heads), the head or the whole Keras network, the mirror image averaged in where the row
used it, and an ensemble's heads averaged, all of them on one backbone pass.
"""
import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import PipelineError, paths
from pipeline.cli import entry_point
from pipeline.features import backbone, engines, fusion
from pipeline.files import atomic_path
from pipeline.modeling import feature_pass, heads, onnx_heads
from pipeline.modeling.saved_model import SavedModel
from pipeline.predict import chosen_models

INPUT, OUTPUT = "images", "probabilities"
INSTALL = "`make export` installs them (the versions in requirements-extras.txt), or pip install .[onnx]"


@dataclass
class Part:
    """One network of images in the exported graph, and the probabilities that come out of it.

    model: an ONNX ModelProto of one input (`input`: a batch of 0-255 images) whose `outputs` are (n, classes)
    probabilities, one per row member (heads on one backbone pass); tta: the part sees the batch followed by its
    mirror images, and each output is averaged over the two halves."""

    model: object
    input: str
    outputs: list
    tta: bool


def export(models, weights=None):
    """The ONNX ModelProto of SavedModels whose probabilities `predict` averages (the chosen row's files)."""
    import onnx

    classes, size = models[0].classes, models[0].input_size
    if any(model.classes != classes or model.input_size != size for model in models):
        raise PipelineError("the models were trained on different classes or image sizes: export only models "
                            "of one run")
    parts = [image_part(model) for model in models if model.kind == "images"]
    groups = {}  # heads on the same backbone pass, with the same TTA, share one backbone
    for model in models:
        if model.kind == "head":
            key = (*(str(model.preprocessing.provenance.get(k)) for k in feature_pass.PASS_KEYS), model.tta)
            groups.setdefault(key, []).append(model)
    parts += [heads_part(members, weights) for members in groups.values()]
    graph = assemble(parts, size, len(classes))
    onnx.helper.set_model_props(graph, {"classes": json.dumps(classes), "input_size": str(size)})
    onnx.checker.check_model(graph, full_check=True)
    return graph


def image_part(model):
    """A Keras model of images (fine-tuned, scratch) converted whole; one sigmoid unit becomes two columns."""
    from pipeline.quiet_keras import keras

    network = model.model
    if network.output_shape[-1] == 1:
        images = keras.Input(network.input_shape[1:], name=INPUT)
        positive = network(images)
        network = keras.Model(images, keras.ops.concatenate([1 - positive, positive], axis=1))
    proto, input_name, outputs = engines.onnx_model(network)
    return Part(proto, input_name, list(outputs.values()), model.tta)


def heads_part(members, weights):
    """The backbone the heads' features came from, preprocessing first, feeding each head: one output per head."""
    import onnx.compose

    network = feature_network(members[0].preprocessing, {m.preprocessing.layer for m in members}, weights)
    proto, input_name, layer_outputs = engines.onnx_model(network)
    outputs = []
    for number, member in enumerate(members):
        layer = member.preprocessing.layer
        head = onnx_heads.head_to_onnx(member.model, network.output[layer].shape[-1], len(member.classes))
        prefix = f"head{number}/"
        head = onnx.compose.add_prefix(same_versions(head, proto), prefix)
        outputs.append(prefix + onnx_heads.OUTPUT)
        proto = onnx.compose.merge_models(proto, head, io_map=[(layer_outputs[layer], prefix + onnx_heads.INPUT)],
                                          outputs=[*layer_outputs.values(), *outputs])
    return Part(proto, input_name, outputs, members[0].tta)


def feature_network(preprocessing, layers, weights):
    """Keras model: 0-255 images -> {layer: the vectors a head on it reads}, with the weights its features had.

    `preprocessing` is a head's pipeline.modeling.feature_pass.FeaturePass; `weights` a weights file when not
    the one recorded with it. The layers' vectors are pipeline.modeling.heads.LAYERS's, as Keras operations.
    Fused features (pipeline.features.fusion) run every backbone of the fusion on the same images."""
    from pipeline.quiet_keras import keras

    parts = feature_pass.backbone_parts(preprocessing.provenance, weights)
    size = int(parts[0]["input_size"])
    images = keras.Input((size, size, 3), name=INPUT)
    outputs = []
    for meta in parts:
        name = meta["backbone"]
        base = backbone.conv_base(backbone.weights_source(weights or meta["weights"], name), size, name)
        feature_pass.check_weights(meta, backbone.weights_digest(base))
        outputs.append(backbone.extractor(base, meta["pooling"], name)(backbone.preprocessing_function(name)(images)))
    arrays = outputs[0] if len(outputs) == 1 else {  # as fusion.combine joins them, in Keras operations
        **outputs[0], fusion.POOLED: keras.ops.concatenate([unit_length(part[fusion.POOLED]) for part in outputs], -1)}
    vectors = {}
    for layer in sorted(layers):
        array, reduce = heads.LAYERS[layer]
        # heads.LAYERS reduces a layer's maps by their mean over positions, in numpy; here in Keras
        vectors[layer] = arrays[array] if reduce is None else keras.ops.mean(arrays[array], axis=(-3, -2))
    return keras.Model(images, vectors, name="_".join([*(meta["backbone"] for meta in parts), "features"]))


def unit_length(vectors):
    from pipeline.quiet_keras import keras

    norms = keras.ops.norm(vectors, axis=-1, keepdims=True)
    return vectors / keras.ops.maximum(norms, np.finfo(np.float32).tiny)


def same_versions(model, like):
    """`model` declared with the IR and operator-set versions of `like` and itself, the newer of each: onnx.compose
    joins only models that agree (the operators either uses are the same in both versions)."""
    from onnx import helper

    versions = {}
    for entry in [*model.opset_import, *like.opset_import]:
        versions[entry.domain] = max(versions.get(entry.domain, 0), entry.version)
    for proto in (model, like):
        proto.ir_version = max(model.ir_version, like.ir_version)
        del proto.opset_import[:]
        proto.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in versions.items())
    return model


def assemble(parts, size, n_classes):
    """One graph: INPUT (n, size, size, 3) -> each part, its mirror images appended where it uses TTA -> OUTPUT,
    the mean of every part's outputs (each first averaged over the image and its mirror image, with TTA)."""
    import onnx.compose

    model = fan_out(parts, size)
    for number, part in enumerate(parts):
        prefixed = onnx.compose.add_prefix(part.model, f"part{number}/")
        model = onnx.compose.merge_models(same_versions(model, prefixed), prefixed,
                                          io_map=[(f"views{number}", f"part{number}/{part.input}")])
    back = fan_in(parts, n_classes)
    return onnx.compose.merge_models(same_versions(model, back), back,
                                     io_map=[(tensor.name, tensor.name) for tensor in back.graph.input],
                                     outputs=[OUTPUT])


def fan_out(parts, size):
    """INPUT -> views<number>, what part <number> sees: the batch, followed by its mirror images with TTA."""
    from onnx import helper

    nodes = []
    for number, part in enumerate(parts):
        view = f"views{number}"
        if part.tta:  # the width reversed: Slice from the last column back past the first
            nodes += [helper.make_node("Slice", [INPUT, "last", "before_first", "width", "backwards"],
                                       [f"{view}/mirrored"]),
                      helper.make_node("Concat", [INPUT, f"{view}/mirrored"], [view], axis=0)]
        else:
            nodes.append(helper.make_node("Identity", [INPUT], [view]))
    views = [floats(f"views{number}", [f"views{number}/n", size, size, 3]) for number in range(len(parts))]
    return graph_model(nodes, [floats(INPUT, ["n", size, size, 3])], views, {
        "last": [-1], "before_first": [np.iinfo(np.int64).min], "width": [2], "backwards": [-1]})


def fan_in(parts, n_classes):
    """Every part's outputs -> OUTPUT, their mean; a TTA part's (2n, classes) first averaged over its halves."""
    from onnx import helper

    nodes, inputs, averaged = [], [], []
    for number, part in enumerate(parts):
        for output in part.outputs:
            name = f"part{number}/{output}"
            inputs.append(floats(name, [f"{name}/n", n_classes]))
            if part.tta:
                nodes += [helper.make_node("Reshape", [name, "halves"], [f"{name}/halves"]),
                          helper.make_node("ReduceMean", [f"{name}/halves"], [f"{name}/mean"], axes=[0], keepdims=0)]
                name = f"{name}/mean"
            averaged.append(name)
    nodes.append(helper.make_node("Mean", averaged, [OUTPUT]))
    return graph_model(nodes, inputs, [floats(OUTPUT, ["n", n_classes])], {"halves": [2, -1, n_classes]})


def floats(name, shape):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def graph_model(nodes, inputs, outputs, constants):
    """A ModelProto of `nodes`, with `constants` ({name: int64 values}) as initializers."""
    from onnx import TensorProto, helper

    initializers = [helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
                    for name, values in constants.items()]
    graph = helper.make_graph(nodes, "glue", inputs, outputs, initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", onnx_heads.ONNX_OPSET)])


@entry_point
def main(argv):
    parser = argparse.ArgumentParser(prog="python -m pipeline.export", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default=str(paths.EXPORTED), help="ONNX file to write (default: %(default)s)")
    parser.add_argument("-m", "--model", action="append",
                        help=f"a saved model to export instead of the chosen row's (from {paths.CHOSEN}); "
                             "repeat to average several, as predict does")
    parser.add_argument("--weights", help="the backbone's weights file, if not the one recorded with the model")
    args = parser.parse_args(argv)
    names = args.model or chosen_models()
    missing = [name for name in ("onnx", "skl2onnx", "tf2onnx") if not engines.importable(name)]
    if missing:
        raise PipelineError(f"exporting needs {', '.join(missing)}: {INSTALL}")
    graph = export([SavedModel.load(name) for name in names], args.weights)
    with atomic_path(args.out) as tmp:
        tmp.write_bytes(graph.SerializeToString())
    print(f"{', '.join(names)} written to {args.out} as one ONNX graph ({Path(args.out).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
