import subprocess
import sys

import keras
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.features import backbone
from tests.conftest import shared_setting


def test_imagenet_means_a_download_unless_the_setting_points_at_a_file(monkeypatch, tmp_path):
    monkeypatch.delenv(backbone.WEIGHTS_ENV, raising=False)
    assert backbone.weights_source("imagenet") == "imagenet"
    local = tmp_path / "vgg16.h5"
    local.touch()
    monkeypatch.setenv(backbone.WEIGHTS_ENV, str(local))
    assert backbone.weights_source("imagenet") == str(local)


def test_a_missing_weights_file_names_where_the_path_came_from(monkeypatch, tmp_path):
    monkeypatch.setenv(backbone.WEIGHTS_ENV, str(tmp_path / "gone.h5"))
    with pytest.raises(PipelineError, match=r"gone\.h5 \(from \$VGG16_IMAGENET_WEIGHTS\) not found"):
        backbone.weights_source("imagenet")
    with pytest.raises(PipelineError, match=r"from backbone\.weights in params\.yaml"):
        backbone.weights_source(str(tmp_path / "gone.h5"))


def test_a_failed_download_says_how_to_work_offline(monkeypatch):
    monkeypatch.delenv(backbone.WEIGHTS_ENV, raising=False)

    def no_network(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.src.applications.vgg16.file_utils, "get_file", no_network)
    with pytest.raises(PipelineError, match=r"could not download .*no network.* Set VGG16_IMAGENET_WEIGHTS="):
        backbone.build("imagenet", 32, "avg")


def test_a_file_that_is_not_vgg16_weights_is_refused(tmp_path):
    wrong = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(wrong)
    with pytest.raises(PipelineError, match="could not load vgg16 conv-base weights"):
        backbone.build(str(wrong), 32, "avg")


@pytest.mark.parametrize("pooling, size, dim", [("flatten", 64, 2 * 2 * 512), ("avg", 64, 512), ("max", 96, 512)])
def test_pooling_decides_the_feature_length(random_weights, pooling, size, dim):
    model = backbone.build(str(random_weights), size, pooling)
    assert model.output_shape == (None, dim)


def test_pooling_auto_is_what_each_network_s_own_classifier_does_and_a_pooling_named_applies_to_all():
    assert backbone.pooling_for("auto", "vgg16") == "flatten"  # VGG16's fc1 reads its map flattened
    assert {backbone.pooling_for("auto", name) for name in backbone.BACKBONES if name != "vgg16"} == {"avg"}
    assert backbone.pooling_for("max", "vgg16") == backbone.pooling_for("max", "mobilenetv2") == "max"


def test_too_small_an_input_is_refused(random_weights):
    with pytest.raises(PipelineError, match="at least 32"):
        backbone.build(str(random_weights), 16, "avg")


def test_the_weights_digest_follows_the_values(random_weights):
    model = backbone.build(str(random_weights), 32, "avg")
    same = backbone.build(str(random_weights), 64, "flatten")  # other shape, same weights
    assert backbone.weights_digest(model) == backbone.weights_digest(same)
    model.layers[1].kernel.assign(model.layers[1].kernel * 2)
    assert backbone.weights_digest(model) != backbone.weights_digest(same)


def test_an_unknown_backbone_name_lists_the_registered_ones():
    with pytest.raises(PipelineError, match=r"backbone\.name is 'resnet'; use one of vgg16, resnet50v2, "):
        backbone.get("resnet")


@pytest.mark.parametrize("entry", backbone.BACKBONES.values(), ids=list(backbone.BACKBONES))
def test_every_entry_names_a_keras_application_and_preprocesses_a_copy(entry):
    assert callable(getattr(keras.applications, entry.constructor))
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    kept = images.copy()
    out = backbone.preprocess(images, entry.name)
    np.testing.assert_array_equal(images, kept)  # the caller's array is left as it was
    assert out.dtype == np.float32 and out.shape == images.shape and np.isfinite(out).all()
    # The NumPy preprocessing is Keras's own, so features cached before it was written stay valid.
    np.testing.assert_array_equal(out, backbone.preprocessing_function(entry.name)(images.copy()))


def test_each_backbone_has_its_own_offline_setting(monkeypatch, tmp_path):
    local = tmp_path / "resnet50v2_notop.h5"
    local.touch()
    monkeypatch.setenv("RESNET50V2_IMAGENET_WEIGHTS", str(local))
    monkeypatch.delenv(backbone.WEIGHTS_ENV, raising=False)
    assert backbone.weights_source("imagenet", "resnet50v2") == str(local)
    assert backbone.weights_source("imagenet", "vgg16") == "imagenet"  # VGG16's setting is its own


def test_random_weights_are_drawn_from_a_fixed_seed_whatever_was_drawn_before():
    """weights: random, so the features stage, fine-tuning and predict, each its own process, agree on them."""
    assert backbone.weights_source("random") == "random"
    first = backbone.weights_digest(backbone.conv_base("random", 32))
    keras.utils.set_random_seed(123)
    keras.random.normal((3,))
    assert backbone.weights_digest(backbone.conv_base("random", 48)) == first


def test_importing_the_registry_loads_no_tensorflow():
    code = "import sys, pipeline.features.backbone; print('tensorflow' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "False"


def test_another_backbone_loads_a_local_weights_file(tmp_path):
    """backbone.weights: a path works for every backbone; here EfficientNetV2-B0, the smallest file."""
    model = backbone.conv_base("random", 32, "efficientnetv2b0")
    model.get_layer("top_conv").kernel.assign(model.get_layer("top_conv").kernel + 1.0)  # not the seed's weights
    path = tmp_path / "efficientnetv2b0.weights.h5"
    model.save_weights(path)
    loaded = backbone.conv_base(str(path), 64, "efficientnetv2b0")
    assert backbone.weights_digest(loaded) == backbone.weights_digest(model)
    np.testing.assert_array_equal(loaded.get_layer("top_conv").kernel, model.get_layer("top_conv").kernel)
    with pytest.raises(PipelineError, match="could not load vgg16 conv-base weights from .*efficientnetv2b0"):
        backbone.conv_base(str(path), 32, "vgg16")


# The backbones whose ImageNet weights .ci/run points at (../shared/weights/), with their parameter counts.
REAL_WEIGHTS = {"vgg16": 14_714_688, "densenet121": 7_037_504, "mobilenetv2": 2_257_984}


@pytest.mark.parametrize("name", REAL_WEIGHTS)
def test_real_imagenet_weights_load_and_their_features_tell_cats_from_dogs(name, shared_datasets):
    """Each offline weights file loads through its own variable, and with its network's own preprocessing the
    pooled features of 6 cats and 6 dogs put nearly every photo nearest the mean of its own class (leave one
    out). Random weights or another network's preprocessing do about as well as a coin."""
    from pipeline.data.images import load_images
    from pipeline.features import extraction

    shared_setting(backbone.get(name).weights_env)
    files = [path for label in ("cats", "dogs")
             for path in sorted((shared_datasets / "cats-dogs-small/train" / label).iterdir())[:6]]
    extractor = extraction.Extractor(backbone.weights_source(backbone.IMAGENET, name), 150, "avg", backbone=name)
    features = extractor.load()(load_images(files, 150))["features"]
    assert backbone.conv_base(backbone.IMAGENET, 150, name).count_params() == REAL_WEIGHTS[name]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    labels = np.repeat([0, 1], 6)
    right = 0
    for left_out in range(len(files)):
        rest = np.arange(len(files)) != left_out
        centroids = [unit[rest & (labels == c)].mean(axis=0) for c in (0, 1)]
        right += int(np.argmax([unit[left_out] @ c for c in centroids]) == labels[left_out])
    assert right >= 11, f"{name}: {right} of 12 nearest their own class"
