import hashlib
import json
import pickle

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pipeline import PipelineError
from pipeline.data.images import load_image
from pipeline.features import backbone
from pipeline.modeling import saved_model
from pipeline.modeling.evaluation import average_with_mirror
from pipeline.modeling.feature_pass import FeaturePass
from pipeline.modeling.finetune import taking_images
from pipeline.modeling.saved_model import MAGIC, SavedModel, read_header
from pipeline.modeling.scratch import ScratchCNN, without_augmentation
from pipeline.quiet_keras import keras
from tests.conftest import make_tree
from tests.test_augment import ON


def head_model(classes=("blue", "red"), seen=(0, 1)):
    """A fitted logistic regression on 3 features, saved as a head (its FeaturePass is never run here)."""
    rng = np.random.default_rng(0)
    y = np.resize(seen, 20)
    X = rng.normal(size=(20, 3)) + 3 * y[:, None]
    return SavedModel(LogisticRegression().fit(X, y), classes, 32, preprocessing=FeaturePass({"input_size": 32}))


def colour_cnn():
    """A tiny Keras model of 0-255 images whose answer depends on the left half only: mirroring changes it."""
    keras.utils.set_random_seed(0)
    images = keras.Input((8, 8, 3))
    left = keras.layers.Cropping2D(((0, 0), (0, 4)))(keras.layers.Rescaling(1 / 255)(images))
    proba = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(left))
    return keras.Model(images, proba)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "head.model"
    head_model().save(path)
    return path


class Marker:
    """Unpickling this creates a file: shows whether a payload was ever unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return self.path.touch, ()


def rewrite(path, header=None, payload=None):
    """The model file at `path` with its header (dict) or payload bytes replaced."""
    old_header, old_payload = read_header(path)
    path.write_bytes(MAGIC + json.dumps(header or old_header).encode() + b"\n" + (payload or old_payload))


def test_a_saved_model_loads_back_and_predicts_the_same(saved):
    loaded = SavedModel.load(saved)
    X = np.random.default_rng(1).normal(size=(5, 3))
    np.testing.assert_array_equal(loaded.predict_proba_arrays(X), head_model().predict_proba_arrays(X))
    assert loaded.classes == ["blue", "red"] and loaded.kind == "head"
    header, _ = read_header(saved)
    assert header["format"] == saved_model.FORMAT_VERSION and header["classes"] == ["blue", "red"]
    assert saved.read_bytes().startswith(MAGIC)


def test_a_plain_joblib_file_is_refused_unread(tmp_path):
    marker = tmp_path / "unpickled"
    joblib.dump(Marker(marker), tmp_path / "model.joblib")
    with pytest.raises(PipelineError, match="not a model file this pipeline wrote: it is a pickle .or joblib. file"
                       ) as error:
        SavedModel.load(tmp_path / "model.joblib")
    assert "\n" not in str(error.value)
    assert not marker.exists()


def tiny_onnx_model():
    from onnx import TensorProto, helper

    pixels = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["probabilities"])], "g", [pixels],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1])])
    return helper.make_model(graph).SerializeToString()


@pytest.mark.parametrize("content, says", [
    (tiny_onnx_model, "it is an ONNX file .python -m pipeline.export writes those.; run it with ONNX Runtime"),
    (lambda: bytes(range(7, 107)), r"not a model file this pipeline wrote .it starts with b'\\x07\\x08"),
    (lambda: MAGIC[:9], r"is truncated .9 bytes, cut inside its header.: copy it again"),
    (lambda: MAGIC + b'{"format": 1, "payl', r"is truncated .34 bytes, cut inside its header"),
    (lambda: b"", "is empty: copy it again"),
    (lambda: b"\x89HDF\r\n\x1a\n" + bytes(100), "it is an HDF5 file"),
])
def test_a_file_that_is_no_model_says_what_it_is(tmp_path, content, says):
    path = tmp_path / "x.model"
    path.write_bytes(content())
    with pytest.raises(PipelineError, match=says) as error:
        SavedModel.load(path)
    assert "\n" not in str(error.value)


def test_a_truncated_file_is_refused(saved):
    saved.write_bytes(saved.read_bytes()[:-100])
    with pytest.raises(PipelineError, match="is truncated"):
        SavedModel.load(saved)


def test_a_changed_payload_is_refused_before_it_is_unpickled(saved, tmp_path):
    marker = tmp_path / "unpickled"
    _, payload = read_header(saved)
    bomb = pickle.dumps(Marker(marker))
    rewrite(saved, payload=bomb + b"\0" * (len(payload) - len(bomb)))  # same length: only the sha256 tells
    with pytest.raises(PipelineError, match="has changed since the pipeline wrote it"):
        SavedModel.load(saved)
    assert not marker.exists()


def test_one_flipped_byte_is_refused(saved):
    data = bytearray(saved.read_bytes())
    data[-50] ^= 1
    saved.write_bytes(bytes(data))
    with pytest.raises(PipelineError, match="has changed since"):
        SavedModel.load(saved)


def test_another_format_version_and_a_damaged_header_are_refused(saved):
    header, _ = read_header(saved)
    rewrite(saved, header={**header, "format": saved_model.FORMAT_VERSION + 1})
    with pytest.raises(PipelineError, match=f"model format {saved_model.FORMAT_VERSION + 1} and this pipeline reads"):
        SavedModel.load(saved)
    saved.write_bytes(MAGIC + b"{not json\n" + b"payload")
    with pytest.raises(PipelineError, match="damaged header"):
        SavedModel.load(saved)


def test_a_checked_file_that_holds_something_else_is_refused(tmp_path):
    """The digest says the bytes are intact, not what they hold: the type is checked after unpickling."""
    payload = pickle.dumps({"model": "a bundle"})
    header = {"format": saved_model.FORMAT_VERSION, "payload_bytes": len(payload),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    (tmp_path / "dict.model").write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(PipelineError, match="holds a dict, not a pipeline model"):
        SavedModel.load(tmp_path / "dict.model")


def test_a_missing_model_says_how_to_get_one(tmp_path):
    with pytest.raises(PipelineError, match="not found: train it with `dvc repro`"):
        SavedModel.load(tmp_path / "nope.model")


def test_tta_averages_the_view_and_its_mirror():
    def proba_of(X):
        return np.column_stack([X, 1 - X])

    X, mirrored = np.array([0.2, 0.6]), np.array([0.4, 1.0])
    np.testing.assert_allclose(average_with_mirror(proba_of, X), proba_of(X))
    np.testing.assert_allclose(average_with_mirror(proba_of, X, mirrored), [[0.3, 0.7], [0.8, 0.2]])


def test_a_head_that_saw_some_classes_gets_a_column_per_class():
    model = head_model(classes=("a", "b", "c"), seen=(0, 2))
    proba = model.predict_proba_arrays(np.zeros((4, 3)))
    assert proba.shape == (4, 3) and (proba[:, 1] == 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1)


def test_an_image_model_reads_files_and_averages_each_with_its_mirror_image(tmp_path):
    files = sorted(make_tree(tmp_path, per_class=2).rglob("*.png"))
    model = SavedModel(colour_cnn(), ["blue", "red"], 8, tta=True)
    images = np.stack([load_image(f, 8) for f in files])
    plain = SavedModel(model.model, model.classes, 8).predict_proba(files)
    mirrored = SavedModel(model.model, model.classes, 8).predict_proba_arrays(images[:, :, ::-1])
    assert not np.allclose(plain, mirrored)  # the mirror image does change this model's answer
    np.testing.assert_allclose(model.predict_proba(files, batch_size=3), (plain + mirrored) / 2, atol=1e-6)


def test_the_saved_fine_tuned_vgg16_takes_raw_images(tmp_path, random_weights):
    """VGG16's preprocessing is inside the saved model: 0-255 images in, the same numbers as preprocessing outside."""
    vgg16 = backbone.build(str(random_weights), 32, "avg")
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    SavedModel(taking_images(vgg16), ["a"], 32).save(tmp_path / "vgg16.model")
    loaded = SavedModel.load(tmp_path / "vgg16.model")
    np.testing.assert_allclose(loaded.model(images), vgg16(backbone.preprocess(images)), rtol=1e-5, atol=1e-5)


def test_models_of_other_classes_are_not_averaged():
    with pytest.raises(PipelineError, match="different classes"):
        saved_model.average_proba([head_model(), head_model(classes=("cats", "dogs"))], [])


def test_the_saved_scratch_cnn_loads_back_without_its_augmentation(tmp_path):
    """Keras 3.15 cannot load a RandomShear back; the random layers pass images through at inference anyway."""
    y = np.repeat([0, 1], 6)
    X = np.clip(np.random.default_rng(0).normal(80 + 80 * y[:, None, None, None], 20, (12, 48, 48, 3)), 0, 255)
    augmentation = {**ON, "shear": 0.2}
    cnn = ScratchCNN(augmentation, epochs=1, batch_size=4).fit(X.astype(np.uint8), y)
    SavedModel(without_augmentation(cnn.model_, augmentation), ["a", "b"], 48).save(tmp_path / "cnn.model")
    loaded = SavedModel.load(tmp_path / "cnn.model")
    np.testing.assert_allclose(loaded.predict_proba_arrays(X), cnn.predict_proba(X), atol=1e-6)


def test_a_checked_file_that_cannot_be_unpickled_is_one_line(tmp_path):
    """E.g. a model saved by a version whose classes are gone: the header is fine, unpickling fails."""
    payload = b"cno_such_module\nThing\n."  # pickle protocol 0: the global no_such_module.Thing
    header = {"format": saved_model.FORMAT_VERSION, "payload_bytes": len(payload),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    (tmp_path / "old.model").write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(PipelineError, match="could not load .*No module named 'no_such_module'.*dvc repro") as error:
        SavedModel.load(tmp_path / "old.model")
    assert "\n" not in str(error.value)
