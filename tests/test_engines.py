import subprocess
import sys

import numpy as np
import pytest
from conftest import shared_setting

from pipeline import PipelineError
from pipeline.features import backbone, engines

SIZE = 48


def one_line_error(call, *args):
    with pytest.raises(PipelineError) as error:
        call(*args)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_importing_the_module_loads_no_engine():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, pipeline.features.engines; "
         "print([m for m in ('tensorflow', 'keras', 'openvino', 'onnxruntime', 'tf2onnx') if m in sys.modules])"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert loaded.strip() == "[]"


def test_unknown_engine_or_precision_is_a_one_line_error():
    assert "use one of auto, keras, openvino, onnxruntime" in one_line_error(engines.resolve, "tensorrt", "fp32")
    assert "use one of auto, fp32, bf16, int8" in one_line_error(engines.resolve, "keras", "fp16")


def test_an_engine_that_is_not_installed_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an uninstalled module looks like to find_spec
    message = one_line_error(engines.resolve, "openvino", "fp32")
    assert "openvino is not installed: pip install openvino==" in message
    assert "or set backbone.engine: keras" in message
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    assert "tf2onnx is not installed" in one_line_error(engines.resolve, "onnxruntime", "fp32")


def test_auto_prefers_openvino_on_a_cpu_and_keras_on_a_gpu_or_without_openvino(monkeypatch):
    monkeypatch.setattr(engines, "missing_modules", lambda engine: [])
    monkeypatch.setattr(engines, "openvino_capabilities", lambda: ["FP32", "BF16"])
    monkeypatch.setattr(engines, "tensorflow_sees_gpu", lambda: False)
    assert engines.resolve("auto", "auto") == ("openvino", "bf16")
    assert engines.resolve("auto", "fp32") == ("openvino", "fp32")
    monkeypatch.setattr(engines, "tensorflow_sees_gpu", lambda: True)
    assert engines.resolve("auto", "fp32") == ("keras", "fp32")
    monkeypatch.setattr(engines, "tensorflow_sees_gpu", lambda: False)
    monkeypatch.setattr(engines, "missing_modules", lambda engine: ["openvino"] if engine == "openvino" else [])
    assert engines.resolve("auto", "fp32") == ("keras", "fp32")


def test_bf16_where_it_cannot_run_is_refused_and_auto_falls_to_fp32(monkeypatch):
    monkeypatch.setattr(engines, "missing_modules", lambda engine: [])
    monkeypatch.setattr(engines, "openvino_capabilities", lambda: ["FP32", "INT8"])
    monkeypatch.setattr(engines, "cpu_has_bf16", lambda: False)
    for engine in engines.ENGINES:
        message = one_line_error(engines.resolve, engine, "bf16")
        assert message.startswith("params.yaml: backbone.precision is bf16 but ")
        assert message.endswith("set backbone.precision: fp32 (or auto)")
    assert engines.resolve("keras", "auto") == ("keras", "fp32")
    assert engines.resolve("onnxruntime", "auto") == ("onnxruntime", "fp32")
    assert "FP32, INT8" in one_line_error(engines.resolve, "openvino", "bf16")


def test_int8_runs_on_openvino_with_nncf_and_auto_picks_it_there(monkeypatch):
    installed = {"keras", "openvino", "onnxruntime", "tf2onnx", "nncf"}
    monkeypatch.setattr(engines, "missing_modules", lambda engine: [m for m in engines.MODULES[engine]
                                                                     if m not in installed])
    monkeypatch.setattr(engines, "openvino_capabilities", lambda: ["FP32", "BF16", "INT8"])
    monkeypatch.setattr(engines, "cpu_has_bf16", lambda: True)
    assert engines.resolve("openvino", "auto") == engines.resolve("openvino", "int8") == ("openvino", "int8")
    assert engines.resolve("keras", "auto") == ("keras", "bf16")
    # training computes as auto does: int8 is for extraction
    assert engines.keras_precision("int8") == engines.keras_precision("auto") == "bf16"
    for engine in ("keras", "onnxruntime"):
        message = one_line_error(engines.resolve, engine, "int8")
        assert f"is int8 but only OpenVINO runs int8 (backbone.engine: openvino or auto), not {engine}" in message
    installed.remove("nncf")
    assert engines.resolve("openvino", "auto") == ("openvino", "bf16")
    assert "NNCF, which quantizes the network, is not installed (pip install nncf==" in one_line_error(
        engines.resolve, "openvino", "int8")
    installed.add("nncf")
    monkeypatch.setattr(engines, "openvino_capabilities", lambda: ["FP32"])
    assert engines.resolve("openvino", "auto") == ("openvino", "fp32")
    assert "OpenVINO finds no int8 support on this CPU (it has FP32)" in one_line_error(
        engines.resolve, "openvino", "int8")


def test_bf16_instructions_are_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx512f avx512_bf16 avx512vl\n")
    assert engines.cpu_has_bf16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx512f avx512vl\n")
    assert not engines.cpu_has_bf16(cpuinfo)
    assert not engines.cpu_has_bf16(tmp_path / "absent")


@pytest.fixture(scope="module")
def extractor():
    weights = shared_setting(backbone.WEIGHTS_ENV)  # real weights: random ones give near-zero features
    return backbone.extractor(backbone.conv_base(str(weights), SIZE), "avg")


@pytest.fixture(scope="module")
def batch():
    images = np.random.default_rng(0).integers(0, 256, (4, SIZE, SIZE, 3))
    return backbone.preprocess(images)


@pytest.fixture(scope="module")
def keras_fp32(extractor, batch):
    return engines.compile_for(extractor, "keras", "fp32")(batch)


def cosines(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("engine", ["keras", "openvino", "onnxruntime"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_engine_gives_keras_fp32_features_for_any_batch_size(engine, precision, extractor, batch, keras_fp32):
    try:
        engines.resolve(engine, precision)
    except PipelineError as cannot_run_here:
        pytest.skip(str(cannot_run_here))
    run = engines.compile_for(extractor, engine, precision)
    if (engine, precision) != ("keras", "fp32"):
        assert engines.compile_for(extractor, engine, precision) is run  # converted once
    outputs, first_alone = run(batch), run(batch[:1])
    assert set(outputs) == set(first_alone) == {"features", backbone.INTERMEDIATE}
    for name, expected in keras_fp32.items():
        got = outputs[name]
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert first_alone[name].shape == (1, *expected.shape[1:])
        scale = np.abs(expected).max()
        assert scale > 0
        if precision == "fp32":
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)
            np.testing.assert_allclose(first_alone[name][0], got[0], rtol=0, atol=1e-4 * scale)
        else:
            assert cosines(got, expected).min() > 0.999
            assert np.abs(got - expected).max() < 0.02 * scale
            assert cosines(first_alone[name], got[:1]).min() > 0.9999


def small_model(*layers):
    from pipeline.quiet_keras import keras

    images = keras.Input((8, 8, 3))
    x = images
    for layer in layers:
        x = layer(x)
    return keras.Model(images, {"features": keras.layers.GlobalAveragePooling2D()(x), "maps": x}, name="small")


def test_onnx_runtime_runs_a_model_that_holds_constants_outside_its_weights():
    """As EfficientNetV2's Normalization layer does: they are frozen into the graph, not left as missing inputs."""
    from pipeline.quiet_keras import keras

    try:
        engines.resolve("onnxruntime", "fp32")
    except PipelineError as cannot_run_here:
        pytest.skip(str(cannot_run_here))
    keras.utils.set_random_seed(0)
    model = small_model(keras.layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[3600.0, 3000.0, 2500.0]),
                        keras.layers.Conv2D(4, 3, activation="relu"))
    batch = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    expected = engines.compile_for(model, "keras", "fp32")(batch)
    got = engines.compile_for(model, "onnxruntime", "fp32")(batch)
    for name in ("features", "maps"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5)


def test_onnx_runtime_refuses_a_model_it_cannot_convert_with_one_line_saying_what_to_use():
    """Keras compiles grouped convolutions (ConvNeXt's) with XLA on a CPU, which tf2onnx cannot convert."""
    from pipeline.quiet_keras import keras

    try:
        engines.resolve("onnxruntime", "fp32")
    except PipelineError as cannot_run_here:
        pytest.skip(str(cannot_run_here))
    model = small_model(keras.layers.Conv2D(6, 3, groups=3))
    message = one_line_error(engines.compile_for, model, "onnxruntime", "fp32")
    assert message.startswith("ONNX Runtime cannot run small (")
    assert message.endswith("set backbone.engine: keras or openvino")


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_a_saved_converted_model_runs_alone_with_the_numbers_of_the_conversion(engine, batch, tmp_path):
    try:
        engines.resolve(engine, "fp32")
    except PipelineError as cannot_run_here:
        pytest.skip(str(cannot_run_here))
    assert engines.load_saved(tmp_path / "model", engine, "fp32") is None  # nothing saved yet
    model = backbone.extractor(backbone.conv_base("random", SIZE), "avg")  # a model of its own: converted afresh
    converted = engines.compile_for(model, engine, "fp32", saved=tmp_path / "model")(batch)
    saved = engines.load_saved(tmp_path / "model", engine, "fp32")(batch)
    assert set(saved) == set(converted) == {"features", backbone.INTERMEDIATE}
    for name, array in converted.items():
        np.testing.assert_array_equal(saved[name], array)
    assert sorted(path.suffix for path in tmp_path.iterdir()) == ([".bin", ".xml"] if engine == "openvino" else
                                                                 [".onnx"])  # and no temporary file left


def test_keras_has_no_saved_model_to_load(tmp_path):
    (tmp_path / "model.xml").write_text("")
    assert engines.load_saved(tmp_path / "model", "keras", "fp32") is None


def test_a_linux_machine_without_gpu_device_files_has_no_gpu_for_tensorflow(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    assert engines.tensorflow_sees_gpu(devices=tmp_path) is False
