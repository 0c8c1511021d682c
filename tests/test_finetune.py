import pickle
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline import PipelineError, paths
from pipeline.data import duplicates
from pipeline.features import backbone, store
from pipeline.features.store import Features
from pipeline.files import write_csv
from pipeline.modeling import finetune, networks
from pipeline.modeling.heads import make_head
from pipeline.modeling.saved_model import SavedModel
from pipeline.quiet_keras import keras

SIZE = 32


@pytest.fixture(scope="module")
def setup(random_weights):
    """Random images, their intermediate output and features, and a dense head trained on the features."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (16, SIZE, SIZE, 3)).astype(np.float32)
    y = np.array([0, 1] * 8)
    out = backbone.extractor(backbone.conv_base(str(random_weights), SIZE), "flatten").predict(
        backbone.preprocess(images), verbose=0)
    head = make_head("dense", {"type": "dense", "scale": "l2", "epochs": 2}).fit(out["features"], y)
    return images, out[backbone.INTERMEDIATE], out["features"], y, head


def tuned(setup, random_weights, **settings):
    images, intermediate, _, y, head = setup
    tuner = finetune.FineTuner(head, str(random_weights), SIZE, "flatten", epochs=2, patience=2,
                               batch_size=4, learning_rate=1e-2, **settings)
    return tuner.fit(networks.Views(intermediate, y), validation=(intermediate, y))


def test_the_head_as_keras_layers_gives_the_scikit_learn_pipelines_probabilities(setup, random_weights):
    images, intermediate, X, y, head = setup
    tuner = finetune.FineTuner(head, str(random_weights), SIZE, "flatten").build()
    np.testing.assert_allclose(tuner.predict_proba(intermediate), head.predict_proba(X), atol=1e-5)


def test_only_block5_and_the_head_change_while_blocks_1_to_4_stay_frozen(setup, random_weights):
    before = backbone.conv_base(str(random_weights), SIZE)
    tuner = tuned(setup, random_weights)
    for layer in before.layers[1:]:  # all but the input
        after = tuner.model_.get_layer(layer.name)
        for old, new in zip(layer.get_weights(), after.get_weights()):
            if layer.name.startswith("block5"):
                assert after.trainable and not np.allclose(old, new)
            else:
                assert not after.trainable
                np.testing.assert_array_equal(old, new)


def test_the_cached_path_gives_the_full_models_outputs(setup, random_weights):
    images, intermediate, *_ = setup
    tuner = tuned(setup, random_weights)
    full = networks.keras_proba(tuner.model_, backbone.preprocess(images))
    np.testing.assert_allclose(tuner.predict_proba(intermediate), full, atol=1e-5)


def test_training_in_bfloat16_trains_block5_and_leaves_a_float32_model(setup, random_weights):
    images, intermediate, *_ = setup
    fp32, bf16 = tuned(setup, random_weights), tuned(setup, random_weights, precision="bf16")
    assert {layer.compute_dtype for layer in bf16.model_.layers} == {"float32"}
    tuned_weights = [(ours, theirs) for ours, theirs in zip(bf16.cached_.get_weights(), fp32.cached_.get_weights())
                     if not np.array_equal(ours, theirs)]
    assert tuned_weights  # bfloat16's rounding took other steps
    for ours, theirs in tuned_weights:
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, atol=0.05)
    np.testing.assert_allclose(bf16.predict_proba(intermediate), fp32.predict_proba(intermediate), atol=0.1)
    np.testing.assert_allclose(networks.keras_proba(bf16.model_, backbone.preprocess(images)),
                               bf16.predict_proba(intermediate), atol=1e-5)


def test_features_made_with_other_weights_are_refused(setup, random_weights):
    with pytest.raises(PipelineError, match="weights differ"):
        tuned(setup, random_weights, expected_sha256="0" * 64)


@pytest.mark.parametrize("spec, message", [
    ({"type": "logreg"}, "head of type dense"),
    ({"type": "dense", "scale": "standard", "epochs": 1}, "scale: l2 or none"),
])
def test_heads_that_cannot_be_fine_tuned_are_refused(setup, spec, message):
    _, _, X, y, _ = setup
    with pytest.raises(PipelineError, match=message):
        finetune.head_layers(make_head("head", spec).fit(X, y))


def test_without_a_validation_split_it_stops_on_the_images_the_dense_head_held_back(tmp_path, monkeypatch):
    """Both fits leave the same images out, copies of one picture together, so stopping sees none of them."""
    monkeypatch.chdir(tmp_path)
    train_paths = [f"train/{i}.png" for i in range(6)]
    write_csv(paths.DUPLICATES, pd.DataFrame({"group": [0, 0], "path": ["train/1.png", "train/4.png"],
                                              "split": "train", "label": "a", "kind": "exact", "left_out": False}))
    groups = duplicates.image_groups(train_paths, duplicates.read(paths.DUPLICATES))
    train = Features(X=np.arange(6.0)[:, None], y=np.array([0, 1, 0, 1, 0, 1]), paths=train_paths,
                     classes=["a", "b"], meta={})
    dense = SimpleNamespace(stopping_groups_=np.array([groups[1]]))  # the head stopped on image 1 and its copy
    selected = np.array([False, False, False, False, False, True])  # image 5: a selection image
    fit, stop = finetune.stopping_data(train, dense, selected, files=None)  # no validation file to open
    assert fit.tolist() == [True, False, True, True, False, False]  # neither stopping nor selection images
    assert stop[:].ravel().tolist() == [1.0, 4.0] and stop.y.tolist() == [1, 0]


def test_the_starting_head_is_refitted_without_the_selection_images(tmp_path, monkeypatch, setup):
    """Fine-tuning starts from a head that never saw a selection image, on the same settings, and it stops on
    images that head left out, none of them selection images either."""
    monkeypatch.chdir(tmp_path)
    _, intermediate, X, y, head = setup
    train_paths = [f"train/{i}.png" for i in range(len(y))]
    store.write(paths.features_file("train"), [{"features": X, backbone.INTERMEDIATE: intermediate}], list(y),
                train_paths, ["a", "b"], started=0.0, meta={})
    write_csv(paths.DUPLICATES, pd.DataFrame(columns=["group", "path", "split", "label", "kind", "left_out"]))
    fitted = []
    monkeypatch.setattr(finetune.evaluation, "fit", recording(finetune.evaluation.fit, fitted))
    selected = np.arange(len(y)) % 4 == 0
    assert finetune.starting_head(head, selected & False) is head  # nothing to leave out: the trained head
    refitted = finetune.starting_head(head, selected)
    assert refitted is not head and refitted[-1].get_params() == head[-1].get_params()  # same settings and seed
    np.testing.assert_array_equal(fitted[0], X[~selected])  # the rows it fitted on: every image but the selection ones
    train = store.read(paths.features_file("train"), backbone.INTERMEDIATE)
    fit, stop = finetune.stopping_data(train, refitted[-1], selected, files=None)
    watched = [i for i, row in enumerate(intermediate) if any(np.array_equal(row, s) for s in stop[:])]
    assert watched and not selected[watched].any() and not (fit & selected).any() and not fit[watched].any()


def recording(fit, seen):
    """evaluation.fit, keeping the rows X of every call in `seen`."""
    def wrapper(model, X, y, **metadata):
        seen.append(X)
        return fit(model, X, y, **metadata)
    return wrapper


def test_balanced_class_weight_weights_fine_tuning_by_its_training_images(setup, random_weights, class_weights_seen):
    assert "class_weight" in set(finetune.FineTuner().get_params()) - set(finetune.FIXED)  # a params.yaml setting
    images, intermediate, _, y, head = setup
    seen = class_weights_seen
    rows = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:2]]  # 8 of class 0, 2 of class 1
    tuner = finetune.FineTuner(head, str(random_weights), SIZE, "flatten", epochs=1, batch_size=4,
                               class_weight="balanced")
    tuner.fit(networks.Views(intermediate, y, rows=rows), validation=(intermediate, y))
    assert seen["class_weight"] == pytest.approx({0: 10 / 16, 1: 10 / 4})
    with pytest.raises(PipelineError, match="class_weight is 'yes'"):
        tuned(setup, random_weights, class_weight="yes")


def test_without_a_held_out_split_fine_tuning_says_what_to_set(tmp_path, monkeypatch, setup):
    """Only the training features exist: nothing is built, and the message names both ways out."""
    monkeypatch.chdir(tmp_path)
    images, intermediate, X, y, head = setup
    SavedModel(head, ["a", "b"], SIZE).save(paths.model_file("dense"))
    store.write(paths.features_file("train"), [{"features": X, backbone.INTERMEDIATE: intermediate}], list(y),
                [f"train/{i}.png" for i in range(len(y))], ["a", "b"], started=0.0, meta={})
    with pytest.raises(PipelineError, match=r"set data\.split\.test above 0, or finetune: \{\} in params\.yaml"):
        finetune.fine_tune("dense", {}, tmp_path, seed=0, tta=False)


def test_fine_tuning_from_the_file_a_batch_at_a_time_learns_what_it_learns_from_the_arrays(setup, random_weights,
                                                                                          tmp_path):
    images, intermediate, _, y, head = setup
    copies = np.flip(intermediate, axis=2)[:, None]  # a second view of each image
    file = tmp_path / "train.h5"
    store.write(file, [{backbone.INTERMEDIATE: intermediate, f"{backbone.INTERMEDIATE}_augmented": copies}], list(y),
                [f"train/{i}.png" for i in range(len(y))], ["a", "b"], started=0.0, meta={})
    rows = np.arange(len(y)) % 4 != 0

    def tuner(split, validation):
        # The head's layers are trained in place, so each fit starts from a copy; its dropout layer
        # draws its seed from the global one as it is unpickled.
        keras.utils.set_random_seed(0)
        fresh = finetune.FineTuner(pickle.loads(pickle.dumps(head)), str(random_weights), SIZE, "flatten", epochs=2,
                                   patience=2, batch_size=4, learning_rate=1e-2)
        return fresh.fit(networks.Views(split.X, split.y, split.augmented, rows=rows),
                         networks.Views(validation.X, validation.y, rows=~rows))

    whole = store.read(file, backbone.INTERMEDIATE)
    in_memory = tuner(whole, whole)
    with store.opened(file, backbone.INTERMEDIATE) as split:
        streamed = tuner(split, split)
        proba = streamed.predict_proba(split.X)
    assert streamed.history_ == in_memory.history_
    for ours, theirs in zip(streamed.cached_.get_weights(), in_memory.cached_.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(proba, in_memory.predict_proba(whole.X))
