import hashlib

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import clone

from pipeline import PipelineError, paths
from pipeline.data.images import load_image, load_images
from pipeline.files import write_csv
from pipeline.modeling import networks, selection_images
from pipeline.modeling.scratch import FIXED, NETWORKS, ScratchCNN, decoded, train_and_score
from tests.conftest import make_tree
from tests.test_augment import ON


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_the_scratch_cnn_trains_and_augments_only_while_training(network):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 8)
    X = np.clip(rng.normal(60 + 60 * y[:, None, None, None], 20, (24, 48, 48, 3)), 0, 255).astype(np.uint8)
    cnn = ScratchCNN(ON, network=network, epochs=3, patience=3, batch_size=8)
    assert clone(cnn).get_params() == cnn.get_params()
    assert cnn.fit(X, y) is cnn and len(cnn.history_["val_loss"]) == 3
    proba = cnn.predict_proba(X)
    assert proba.shape == (24, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-9)
    np.testing.assert_array_equal(proba, cnn.predict_proba(X))  # no random layers at inference


@pytest.mark.parametrize("network, smallest", [("compact", 16), ("tutorial", 22)])
def test_an_input_too_small_for_the_network_is_explained_and_the_smallest_trains(network, smallest):
    y = np.array([0, 1, 0, 1])
    with pytest.raises(PipelineError, match=f"{network} scratch CNN needs input_size {smallest} or more"):
        ScratchCNN(network=network, epochs=1).fit(np.zeros((4, smallest - 1, smallest - 1, 3), np.uint8), y)
    X = np.zeros((4, smallest, smallest, 3), np.uint8)
    assert ScratchCNN(network=network, epochs=1).fit(X, y, validation=(X, y)).predict_proba(X).shape == (4, 2)


@pytest.mark.parametrize("setting, value", [("network", "resnet"), ("optimizer", "sgd"), ("schedule", "linear")])
def test_an_unknown_network_or_optimizer_names_the_choices(setting, value):
    with pytest.raises(PipelineError, match=f"{setting} is '{value}': use one of"):
        ScratchCNN(epochs=1, **{setting: value}).fit(np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 0, 1]))


def test_a_plateau_of_the_validation_loss_cuts_the_learning_rate():
    # Labels that no image predicts: the validation loss cannot improve, so each lr_patience epochs cut the rate.
    X = np.random.default_rng(3).uniform(0, 255, (16, 24, 24, 3)).astype(np.uint8)
    y = np.tile([0, 1], 8)
    cnn = ScratchCNN(epochs=5, patience=10, lr_patience=1, learning_rate=1e-3).fit(X, y, validation=(X, 1 - y))
    rates = np.asarray(cnn.history_["learning_rate"])
    assert rates[0] == pytest.approx(1e-3) and rates[-1] < 1e-3 * networks.LR_DROP + 1e-9
    assert "learning_rate" not in ScratchCNN(epochs=2, lr_patience=0).fit(X, y, validation=(X, 1 - y)).history_


def test_a_cosine_schedule_lowers_the_rate_every_step_to_zero_at_the_last_epoch():
    X = np.random.default_rng(3).uniform(0, 255, (16, 24, 24, 3)).astype(np.uint8)
    y = np.tile([0, 1], 8)
    cnn = ScratchCNN(epochs=3, patience=10, schedule="cosine", batch_size=8).fit(X, y, validation=(X, 1 - y))
    optimizer = cnn.model_.optimizer
    assert int(optimizer.iterations) == 3 * 2 and float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-12)
    assert "learning_rate" not in cnn.history_  # no plateau cuts on top


def test_bfloat16_training_keeps_float32_weights_and_probabilities():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 8)
    X = np.clip(rng.normal(60 + 120 * y[:, None, None, None], 20, (16, 32, 32, 3)), 0, 255).astype(np.uint8)
    cnn = ScratchCNN(epochs=2, batch_size=8, precision="bf16").fit(X, y)
    conv = cnn.model_.layers[1]
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    proba = cnn.predict_proba(X)
    assert proba.dtype == np.float64 and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-9)


def test_balanced_class_weight_reaches_keras_as_n_over_classes_times_count(class_weights_seen):
    assert "class_weight" in set(ScratchCNN().get_params()) - set(FIXED)  # a params.yaml setting
    seen = class_weights_seen
    X = np.random.default_rng(2).uniform(0, 255, (10, 24, 24, 3)).astype(np.uint8)
    y = np.array(["cat"] * 2 + ["dog"] * 8)
    ScratchCNN(epochs=1, batch_size=8, class_weight="balanced").fit(X, y, validation=(X[:4], y[:4]))
    assert seen["class_weight"] == pytest.approx({0: 10 / 4, 1: 10 / 16})


def test_without_a_held_out_split_nothing_is_trained_and_the_message_says_what_to_set(tmp_path):
    manifest = pd.DataFrame({"path": ["train/a/1.png", "train/b/2.png"], "split": "train", "label": ["a", "b"]})
    cnn = ScratchCNN(epochs=1)
    with pytest.raises(PipelineError, match=r"none: set data\.split\.test above 0, or scratch: \{\} in params\.yaml"):
        train_and_score(cnn, manifest, tmp_path, 32, tta=False)  # the images do not exist: not read either
    assert not hasattr(cnn, "model_")


def test_images_decoded_into_a_file_as_uint8_train_the_network_that_float32_arrays_train(tmp_path):
    """Resized pixels are whole numbers in 0-255, so uint8 loses nothing; the file is read a batch at a time."""
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], 6)
    files = []
    for index, label in enumerate(y):
        pixels = np.clip(rng.normal(70 + 110 * label, 40, (30 + index, 40, 3)), 0, 255).astype(np.uint8)
        files.append(tmp_path / f"{index}.png")
        Image.fromarray(pixels).save(files[-1])
    arrays = np.stack([load_image(file, 24) for file in files])  # float32, as the images were held before
    with h5py.File(decoded(files, 24, tmp_path / "images.h5"), "r") as h5:
        images = h5["images"]
        assert images.dtype == np.uint8
        np.testing.assert_array_equal(images[:], arrays)
        streamed = ScratchCNN(ON, epochs=2, batch_size=4).fit(images, y)
        proba = streamed.predict_proba(images)
    in_memory = ScratchCNN(ON, epochs=2, batch_size=4).fit(arrays, y)
    assert streamed.history_ == in_memory.history_
    np.testing.assert_array_equal(proba, in_memory.predict_proba(arrays))


@pytest.mark.parametrize("splits", [("train", "test"), ("train", "validation", "test")])
def test_the_scratch_cnn_never_trains_or_stops_on_a_selection_image_and_is_scored_on_them(tmp_path, monkeypatch,
                                                                                         splits):
    """With and without a validation split: every image it fits and stops on lies outside the selection images."""
    monkeypatch.chdir(tmp_path)
    images = make_tree(tmp_path / "images", splits=splits, per_class=6)
    files = sorted(images.rglob("*.png"))
    manifest = pd.DataFrame({"path": [f.relative_to(images).as_posix() for f in files],
                             "split": [f.parts[-3] for f in files], "label": [f.parent.name for f in files],
                             "sha256": [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]})
    write_csv(paths.MANIFEST, manifest)
    write_csv(paths.DUPLICATES, pd.DataFrame(columns=["group", "path", "split", "label", "kind", "left_out"]))
    selected = selection_images.selected_paths(0.4, seed=0)
    pixels = {path: load_images([images / path], 32)[0].tobytes() for path in manifest["path"]}
    seen = []
    fit = ScratchCNN.fit

    def recording(self, X, y, validation=None, curves=None):
        seen.extend(np.asarray(x, np.uint8).tobytes() for x in X)  # what it fits on, then stops on
        seen.extend(np.asarray(x, np.uint8).tobytes() for x in (validation[0] if validation else []))
        return fit(self, X, y, validation, curves)

    monkeypatch.setattr(ScratchCNN, "fit", recording)
    _, metrics, _, scored = train_and_score(ScratchCNN(epochs=1, batch_size=4), manifest, images, 32, tta=True,
                                            selection=0.4, seed=0)
    trained_on = {path for path, image in pixels.items() if image in set(seen)}
    assert selected and not trained_on & set(selected)
    assert trained_on >= set(manifest.loc[manifest["split"] == "train", "path"]) - set(selected)
    assert scored["path"].tolist() == selected and metrics["selection"]["images"] == len(selected)
    assert 0 <= metrics["selection"]["accuracy"] <= 1
