import keras
import pytest

from pipeline import PipelineError, backbone


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
    with pytest.raises(PipelineError, match="could not load VGG16 conv-base weights"):
        backbone.build(str(wrong), 32, "avg")


@pytest.mark.parametrize("pooling, size, dim", [("flatten", 64, 2 * 2 * 512), ("avg", 64, 512), ("max", 96, 512)])
def test_pooling_decides_the_feature_length(random_weights, pooling, size, dim):
    model = backbone.build(str(random_weights), size, pooling)
    assert model.output_shape == (None, dim)


def test_too_small_an_input_is_refused(random_weights):
    with pytest.raises(PipelineError, match="at least 32"):
        backbone.build(str(random_weights), 16, "avg")


def test_the_weights_digest_follows_the_values(random_weights):
    model = backbone.build(str(random_weights), 32, "avg")
    same = backbone.build(str(random_weights), 64, "flatten")  # other shape, same weights
    assert backbone.weights_digest(model) == backbone.weights_digest(same)
    model.layers[1].kernel.assign(model.layers[1].kernel * 2)
    assert backbone.weights_digest(model) != backbone.weights_digest(same)
