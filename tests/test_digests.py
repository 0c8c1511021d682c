import h5py
import pytest
from conftest import shared_setting
from keras.src.utils import file_utils

from pipeline import PipelineError
from pipeline.features import backbone, digests

SIZE = 32


def never_built(*args, **kwargs):
    raise AssertionError("the network was built")


@pytest.mark.parametrize("name", ["vgg16", "mobilenetv2"])
def test_a_keras_layout_file_gives_the_digest_of_the_network_loaded_from_it_without_building_it(
        name, tmp_path, monkeypatch):
    model = backbone.conv_base(backbone.RANDOM, SIZE, name)
    model.save(tmp_path / "model.h5")  # Keras's HDF5 layout, as the official ImageNet files
    expected = backbone.weights_digest(model)
    assert digests.keras_layout_digest(tmp_path / "model.h5") == expected
    assert expected == backbone.weights_digest(backbone.conv_base(str(tmp_path / "model.h5"), SIZE, name))
    monkeypatch.setattr(backbone, "conv_base", never_built)
    assert digests.weights_sha256(str(tmp_path / "model.h5"), name, SIZE, notes=tmp_path / "notes") == expected
    assert not (tmp_path / "notes").exists()


@pytest.mark.parametrize("name", ["vgg16", "mobilenetv2", "densenet121"])
def test_the_imagenet_files_digest_as_their_networks(name):
    path = str(shared_setting(backbone.get(name).weights_env))
    assert digests.keras_layout_digest(path) == backbone.weights_digest(backbone.conv_base(path, 150, name))


def test_random_and_keras_3_weights_are_digested_from_the_network_once_then_from_a_note(
        tmp_path, random_weights, monkeypatch):
    assert digests.keras_layout_digest(random_weights) is None  # Keras 3 files list layers alphabetically
    changed = tmp_path / "changed.weights.h5"
    changed.write_bytes(random_weights.read_bytes())
    with h5py.File(changed, "r+") as h5:
        arrays = []
        h5.visititems(lambda name, item: arrays.append(item) if isinstance(item, h5py.Dataset) else None)
        arrays[0][...] += 1
    notes = tmp_path / "notes"
    first = {weights: digests.weights_sha256(weights, "vgg16", SIZE, notes)
             for weights in (backbone.RANDOM, str(random_weights), str(changed))}
    assert first[backbone.RANDOM] == backbone.weights_digest(backbone.conv_base(backbone.RANDOM, SIZE))
    assert first[str(random_weights)] == first[backbone.RANDOM]  # the fixture saved them: the same values
    assert first[str(changed)] != first[backbone.RANDOM] and len(list(notes.iterdir())) == 3
    monkeypatch.setattr(backbone, "conv_base", never_built)
    assert {weights: digests.weights_sha256(weights, "vgg16", SIZE, notes) for weights in first} == first


def test_imagenet_weights_keras_downloaded_are_read_where_keras_keeps_them(tmp_path, monkeypatch):
    vgg16 = shared_setting(backbone.WEIGHTS_ENV)
    monkeypatch.setattr(digests, "KERAS_DOWNLOADS", tmp_path)
    digests.imagenet_download("vgg16", 150).symlink_to(vgg16)
    monkeypatch.setattr(backbone, "conv_base", never_built)
    assert digests.weights_sha256(backbone.IMAGENET, "vgg16", 150) == digests.keras_layout_digest(vgg16)


@pytest.mark.parametrize("name, size", [("vgg16", 150), ("densenet121", 150), ("mobilenetv2", 150),
                                        ("mobilenetv2", 160)])
def test_the_download_names_are_the_files_keras_downloads(name, size, monkeypatch):
    def asked(fname, *args, **kwargs):
        raise RuntimeError(f"asked for {fname}")

    monkeypatch.setattr(file_utils, "get_file", asked)
    monkeypatch.delenv(backbone.get(name).weights_env, raising=False)
    with pytest.raises(PipelineError) as error:
        backbone.conv_base(backbone.IMAGENET, size, name)
    assert f"asked for {digests.imagenet_download(name, size).name}" in str(error.value)
