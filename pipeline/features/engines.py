"""What runs the backbone's forward pass: Keras itself, or the same graph compiled by OpenVINO or ONNX Runtime.

On a CPU the forward pass is nearly all of feature extraction, so it is what an engine can speed up:
bfloat16 arithmetic about doubles it on CPUs with bfloat16 instructions, and OpenVINO's INT8 (the network
quantized by NNCF on the user's own images, pipeline.features.quantization) about doubles it again
(README, Speed). Both change the features slightly, so the engine and precision are part of each features
file's provenance.

TensorFlow, OpenVINO, NNCF and ONNX Runtime are imported only when needed: importing this module loads none.
"""
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import tempfile
import warnings
import weakref
from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.files import atomic_path

ENGINES = ("keras", "openvino", "onnxruntime")
PRECISIONS = ("fp32", "bf16", "int8")
AUTO = "auto"
# What to install for an engine that is missing (the versions tested with this module).
INSTALL = {
    "openvino": "openvino==2026.4.1",
    "onnxruntime": "onnxruntime==1.32.0 tf2onnx==1.17.0 onnx==1.23.2",
    "nncf": "nncf==3.4.0",
}
# Python modules each engine needs: ONNX Runtime runs the model, tf2onnx converts it for it; and NNCF's, which
# quantizes OpenVINO's models for int8.
MODULES = {"keras": ("keras",), "openvino": ("openvino",), "onnxruntime": ("onnxruntime", "tf2onnx"), "nncf": ("nncf",)}
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}
INT8_ENGINE = "openvino"  # the one engine that runs int8: NNCF quantizes OpenVINO's models
ONNX_OPSET = 17
# The file each engine's converted model is saved in (compile_for's `saved`, its suffix added); Keras converts nothing.
SAVED_SUFFIX = {"openvino": ".xml", "onnxruntime": ".onnx"}
SAVED_OUTPUTS = "pipeline_outputs"  # the saved model's note of its outputs' names, in the order compile_for gives
# Device files through which TensorFlow reaches a GPU on Linux: NVIDIA's, AMD's (ROCm), WSL2's.
GPU_DEVICE_FILES = ("nvidia[0-9]*", "kfd", "dxg")
# CPU flags (Linux /proc/cpuinfo) of bfloat16 arithmetic in hardware; without them TensorFlow
# emulates bfloat16, slower than float32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

# model -> {(engine, precision): compiled callable}: a model is converted once per process.
_compiled = weakref.WeakKeyDictionary()


def resolve(engine, precision):
    """(engine, precision) that will run here, for backbone.engine and backbone.precision.

    'auto' engine: Keras when TensorFlow sees a GPU, else OpenVINO where installed, else Keras.
    'auto' precision: the fastest the engine runs here: int8 (OpenVINO with NNCF installed), else bf16 where
    the engine and this CPU run it, else fp32. Explicit values that cannot run here are a PipelineError
    saying what to change; nothing falls back silently.
    """
    if engine == AUTO:
        engine = "openvino" if not missing_modules("openvino") and not tensorflow_sees_gpu() else "keras"
    if engine not in ENGINES:
        raise PipelineError(f"params.yaml: backbone.engine is {engine!r}; use one of {AUTO}, {', '.join(ENGINES)}")
    require(engine, f"params.yaml: backbone.engine is {engine}", ", or set backbone.engine: keras")
    if precision not in (AUTO, *PRECISIONS):
        raise PipelineError(
            f"params.yaml: backbone.precision is {precision!r}; use one of {AUTO}, {', '.join(PRECISIONS)}"
        )
    cannot = cannot_run(engine)
    if precision == AUTO:
        return engine, next(p for p in reversed(PRECISIONS) if p not in cannot)
    if precision in cannot:
        raise PipelineError(
            f"params.yaml: backbone.precision is {precision} but {cannot[precision]}: "
            f"set backbone.precision: fp32 (or {AUTO})"
        )
    return engine, precision


def require(engine, needs, alternative=""):
    """Refuse an engine whose modules are missing here: `needs` says who needs it, `alternative` what else to do."""
    missing = missing_modules(engine)
    if missing:
        raise PipelineError(f"{needs} but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                            f"not installed: pip install {INSTALL[engine]}{alternative}")


def keras_precision(setting):
    """The precision Keras trains in (fine-tuning, the scratch CNN) for backbone.precision `setting`: int8 is
    for extraction only, so it trains as `auto` does."""
    return resolve("keras", AUTO if setting == "int8" else setting)[1]


def cannot_run(engine):
    """{precision `engine` cannot run on this machine: why not}; fp32 runs everywhere."""
    why = {}
    if engine == "onnxruntime":
        why["bf16"] = "ONNX Runtime's CPU kernels have no bfloat16 convolutions"
    elif engine == "openvino":
        capabilities = openvino_capabilities()
        for precision in ("bf16", "int8"):
            if precision.upper() not in capabilities:
                why[precision] = f"OpenVINO finds no {precision} support on this CPU (it has {', '.join(capabilities)})"
    elif not cpu_has_bf16():
        flags = " or ".join(BF16_CPU_FLAGS)
        why["bf16"] = f"this CPU has no bfloat16 instructions ({flags}), so Keras would emulate it slowly"
    if engine != INT8_ENGINE:
        why["int8"] = f"only OpenVINO runs int8 (backbone.engine: {INT8_ENGINE} or {AUTO}), not {engine}"
    elif "int8" not in why and missing_modules("nncf"):
        why["int8"] = f"NNCF, which quantizes the network, is not installed (pip install {INSTALL['nncf']})"
    return why


def provenance(engine, precision):
    """What to store beside the features: the same model gives slightly different numbers per engine."""
    # the installed distribution's version, read without importing the engine (Keras would load TensorFlow);
    # the same as the module's __version__, less the build OpenVINO appends to it
    versions = [engine] + (["nncf"] if precision == "int8" else [])  # NNCF's version decides the quantization
    installed = ", ".join(f"{name} {importlib.metadata.version(MODULES[name][0])}" for name in versions)
    return {"engine": engine, "precision": precision, "engine_version": installed}


def compile_for(model, engine, precision, saved=None, calibration=None):
    """A callable batch -> {output name: float32 array} running `model` with `engine` at `precision`.

    `model` is a keras.Model (outputs a dict, as pipeline.features.backbone.extractor's, or one tensor, named
    'features'); a batch is float32 (n, size, size, 3), already preprocessed, any n >= 1. The
    conversion is done once per model, engine and precision in this process (Keras fp32 has none).
    `saved`: a path (no suffix) to write the converted model to, for `load_saved` in a later run; the
    caller names it after everything that decides the model. `calibration`: for int8, the preprocessed
    images to quantize on (pipeline.features.quantization). Call `resolve` first: this does not check
    that the engine runs here.
    """
    if engine not in ENGINES or precision not in PRECISIONS:
        raise ValueError(f"unknown engine or precision {engine!r}, {precision!r}: call resolve() first")
    if engine == "keras" and precision == "fp32":
        # nothing to convert; and a cached runner would hold `model`, keeping it alive in _compiled
        return keras_runner(model, precision)
    cache = _compiled.setdefault(model, {})
    if (engine, precision) not in cache:
        if engine == "keras":
            cache[engine, precision] = keras_runner(model, precision)
        elif engine == "openvino":
            cache[engine, precision] = openvino_runner(model, precision, saved, calibration)
        else:
            cache[engine, precision] = onnxruntime_runner(model, precision, saved)
    return cache[engine, precision]


def load_saved(saved, engine, precision):
    """compile_for's callable from the model it saved at `saved`, with no Keras model (nor TensorFlow);
    None if none is saved there or the engine converts nothing."""
    if engine not in SAVED_SUFFIX or not Path(saved).with_suffix(SAVED_SUFFIX[engine]).is_file():
        return None
    path = Path(saved).with_suffix(SAVED_SUFFIX[engine])
    if engine == "openvino":
        return openvino_saved(path.read_bytes(), path.with_suffix(".bin").read_bytes(), precision)
    session = onnxruntime_session(path.read_bytes(), path.stem)
    found = json.loads(session.get_modelmeta().custom_metadata_map[SAVED_OUTPUTS])
    return onnxruntime_run(session, session.get_inputs()[0].name, found)


def output_names(model):
    """The names of the model's outputs, in the order of the dict compile_for returns."""
    return list(model.output) if isinstance(model.output, dict) else ["features"]


def as_float32_dict(outputs, names):
    if not isinstance(outputs, dict):
        outputs = dict(zip(names, [outputs]))
    return {name: np.asarray(outputs[name], dtype=np.float32) for name in names}


def keras_runner(model, precision):
    names = output_names(model)
    if precision == "bf16":
        model = bfloat16_copy(model)  # a model of its own: the runner holds no reference to the original
    return lambda batch: as_float32_dict(model.predict_on_batch(batch), names)


def bfloat16_copy(model):
    """The same model, weights and all, computing in bfloat16 (Keras's mixed_bfloat16: weights stay float32)."""
    from pipeline.quiet_keras import keras

    def mixed(layer):
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer) and "dtype" in config:
            config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=mixed)
    copy.set_weights(model.get_weights())
    return copy


def openvino_saved(xml, weights, precision):
    """load_saved's callable from the bytes of a saved OpenVINO model: its .xml and .bin files."""
    import openvino

    converted = openvino.Core().read_model(xml, openvino.Tensor(np.frombuffer(weights, dtype=np.uint8)))
    return openvino_compiled(converted, json.loads(converted.get_rt_info(SAVED_OUTPUTS).astype(str)), precision)


def openvino_runner(model, precision, saved=None, calibration=None):
    import openvino

    names = output_names(model)
    with warnings.catch_warnings():
        # Keras warns that OpenVINO's tracing passes its input as a tuple; the graph is the same.
        warnings.simplefilter("ignore", UserWarning)
        converted = openvino.convert_model(model)
    if precision == "int8":
        from pipeline.features import quantization

        converted = quantization.quantize(converted, calibration)
    if saved:
        converted.set_rt_info(json.dumps(names), SAVED_OUTPUTS)
        save_openvino(converted, Path(saved).with_suffix(SAVED_SUFFIX["openvino"]))
    return openvino_compiled(converted, names, precision)


def save_openvino(converted, path):
    """Write the model's .xml and .bin files, the .xml last: load_saved looks for it, so it finds both complete."""
    import openvino

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.") as tmp:
        # as converted: the default halves the weights to float16, which would change the features
        openvino.save_model(converted, Path(tmp) / path.name, compress_to_fp16=False)
        os.replace(Path(tmp) / path.with_suffix(".bin").name, path.with_suffix(".bin"))
        os.replace(Path(tmp) / path.name, path)


def openvino_compiled(converted, names, precision):
    import openvino

    if precision == "int8":  # what NNCF leaves in floating point computes as fast as it can here
        precision = "bf16" if "BF16" in openvino_capabilities() else "fp32"
    compiled = openvino.Core().compile_model(converted, "CPU", {
        # needed for fp32 too: OpenVINO computes in bfloat16 by default on CPUs that have it
        "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
        # Threads pinned to cores wait whenever another process runs there, as on shared machines
        # (benchmarks/results.md, figures behind the code).
        "ENABLE_CPU_PINNING": False,
    })
    ports = match_outputs(names, [(port, port.get_names()) for port in compiled.outputs])
    request = compiled.create_infer_request()

    def run(batch):
        results = request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        # copies: the request reuses its output buffers on the next call
        return {name: np.array(results[port], dtype=np.float32) for name, port in ports.items()}

    return run


def onnxruntime_runner(model, precision, saved=None):
    proto, input_name, outputs = onnx_model(model)
    found = {name: outputs[name] for name in output_names(model)}
    session = onnxruntime_session(proto.SerializeToString(), model.name)
    if saved:
        proto.metadata_props.add(key=SAVED_OUTPUTS, value=json.dumps(found))
        with atomic_path(Path(saved).with_suffix(SAVED_SUFFIX["onnxruntime"])) as tmp:
            tmp.write_bytes(proto.SerializeToString())
    return onnxruntime_run(session, input_name, found)


def onnxruntime_session(serialized, name):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        return onnxruntime.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # an op tf2onnx left unconverted: the model cannot run here, whatever the input
        raise PipelineError(cannot_convert(name, f"{type(exc).__name__}: {exc}")) from exc


def onnxruntime_run(session, input_name, found):
    """The callable of a session, whose outputs `found` ({output name: its ONNX output's name}) are returned."""
    def run(batch):
        arrays = session.run(list(found.values()), {input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return {name: np.asarray(array, dtype=np.float32) for name, array in zip(found, arrays)}

    return run


def onnx_model(model):
    """(ONNX ModelProto, its input's name, {output name: its ONNX output's name}) of a Keras model, by tf2onnx."""
    # TensorFlow first, through quiet_keras: tf2onnx imports it, with its start-up noise
    from pipeline.quiet_keras import tensorflow  # noqa: F401, I001
    import tf2onnx

    graph, input_name, outputs = frozen_graph(model)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    proto, _ = tf2onnx.convert.from_graph_def(graph, input_names=[input_name], output_names=list(outputs.values()),
                                              opset=ONNX_OPSET)
    return proto, input_name, outputs


def frozen_graph(model):
    """(GraphDef, input tensor name, {output name: tensor name}) of the model with its weights as constants.

    Freezing first also turns tensors the graph captures (the mean and variance of a Normalization
    layer, as EfficientNetV2 has) into constants, which tf2onnx's own tracing left as missing inputs.
    Functions that freezing cannot inline (XLA-compiled ones: Keras runs grouped convolutions, as
    ConvNeXt's, that way on a CPU) tf2onnx cannot convert: that is an error here, before it tries.
    """
    from pipeline.quiet_keras import tensorflow as tf  # noqa: I001 (first: TensorFlow's start-up noise filtered)
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    signature = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="images")
    traced = tf.function(lambda images: model(images, training=False)).get_concrete_function(signature)
    frozen = convert_variables_to_constants_v2(traced, aggressive_inlining=True)
    graph = frozen.graph.as_graph_def()
    calls = [node.name for node in graph.node if node.op in ("StatefulPartitionedCall", "PartitionedCall")]
    if calls:
        raise PipelineError(cannot_convert(model.name, f"tf2onnx cannot convert compiled functions, as {calls[0]}"))
    structured = traced.structured_outputs  # freezing keeps the tensors' names, not this dict
    outputs = structured if isinstance(structured, dict) else {"features": structured}
    return graph, frozen.inputs[0].name, {name: tensor.name for name, tensor in outputs.items()}


def cannot_convert(name, reason):
    reason = reason.replace("\n", " ")[:300]
    return f"ONNX Runtime cannot run {name} ({reason}): set backbone.engine: keras or openvino"


def match_outputs(names, outputs):
    """{model output name: engine output} from (engine output, its names) pairs; one unnamed output is 'features'."""
    if len(names) == 1 and len(outputs) == 1:
        return {names[0]: outputs[0][0]}
    found = {name: output for name in names for output, aliases in outputs if name in aliases}
    if len(found) != len(names):
        raise RuntimeError(f"converted model has outputs {[sorted(a) for _, a in outputs]}, expected {names}")
    return found


def missing_modules(engine):
    """The modules `engine` needs that cannot be imported here."""
    return [name for name in MODULES[engine] if not importable(name)]


def importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
        return False


def openvino_capabilities():
    import openvino

    return list(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def cpu_has_bf16(cpuinfo=Path("/proc/cpuinfo")):
    try:
        flags = cpuinfo.read_text().split()
    except OSError:  # not Linux: no way to tell, so no bfloat16
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def tensorflow_sees_gpu(devices=Path("/dev")):
    """Whether Keras would run on a GPU here (loads TensorFlow: only asked when OpenVINO is the alternative).

    A Linux machine without a GPU's device file has no GPU for TensorFlow: answered without loading it,
    which takes longer than assembling features that are all in the cache.
    """
    if sys.platform.startswith("linux") and not any(any(devices.glob(name)) for name in GPU_DEVICE_FILES):
        return False
    from pipeline.quiet_keras import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
