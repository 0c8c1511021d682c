import json

import h5py
import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedGroupKFold

from pipeline import PipelineError
from pipeline.features import store
from pipeline.features.backbone import INTERMEDIATE
from pipeline.modeling import live
from pipeline.modeling.networks import (
    FusedAdam,
    InOrder,
    RandomViews,
    Views,
    class_weights,
    compile_classifier,
    computing_in,
    keras_proba,
    output_layer,
    set_aside_stopping_rows,
    train,
    uncompiled_copy,
)


def image_rows(labels, copies):
    """(row labels, row groups) for images with `copies` rows each, image-major as the caller fits them."""
    return np.repeat(labels, copies), np.repeat(np.arange(len(labels)), copies)


def test_whole_groups_go_to_one_side_stratified_by_class():
    y, groups = image_rows(np.repeat([0, 1, 2], [20, 20, 10]), copies=3)
    fit, stop = set_aside_stopping_rows(y, groups, 0.2, seed=0)
    assert set(groups[fit]).isdisjoint(groups[stop])
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, stop])), np.arange(len(y)))
    stopped_images = np.unique(groups[stop])
    assert len(stopped_images) == 10  # a fifth of the 50 images, with all their rows
    assert len(stop) == 30
    np.testing.assert_array_equal(np.bincount(y[stopped_images * 3]), [4, 4, 2])


def test_rows_split_without_groups_puts_twins_on_both_sides():
    """Why groups exist: a row split of three copies per image watches twins of what it trains on."""
    y, groups = image_rows(np.repeat([0, 1], 20), copies=3)
    fit, stop = set_aside_stopping_rows(y, None, 0.15, seed=0)
    assert len(stop) in (17, 18) and abs(np.diff(np.bincount(y[stop]))[0]) <= 1  # one of 7 folds of rows
    assert set(groups[fit]) & set(groups[stop])


def test_group_labels_may_be_any_values_and_the_split_follows_the_seed():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1] * 5)
    groups = np.array([f"image{n // 2}" for n in range(len(y))])  # pairs of duplicates
    splits = [set_aside_stopping_rows(y, groups, 0.25, seed) for seed in (0, 0, 1)]
    np.testing.assert_array_equal(splits[0][1], splits[1][1])
    assert not np.array_equal(splits[0][1], splits[2][1])
    assert set(groups[splits[2][0]]).isdisjoint(groups[splits[2][1]])


def test_too_few_groups_to_stratify_still_split():
    # Five images: 15% is one image, too few to hold one of each class.
    y, groups = image_rows(np.array([0, 0, 0, 1, 1]), copies=2)
    fit, stop = set_aside_stopping_rows(y, groups, 0.15, seed=0)
    assert len(stop) == 2 and len(np.unique(groups[stop])) == 1
    assert set(groups[fit]).isdisjoint(groups[stop])


def test_a_duplicate_filed_under_two_classes_is_kept_whole():
    y = np.array([0, 1, 0, 0, 0, 1, 1, 1, 0, 1])
    groups = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])  # rows 0 and 1: one image, two labels
    for seed in range(5):
        fit, stop = set_aside_stopping_rows(y, groups, 0.3, seed)
        assert {0, 1} <= set(fit) or {0, 1} <= set(stop)


def test_the_stopping_share_is_one_fold_and_a_share_past_half_is_refused():
    y, groups = image_rows(np.repeat([0, 1], 30), copies=2)
    for fraction, images in ((0.5, 30), (0.25, 15), (0.15, 60 / 7)):  # one of round(1 / fraction) folds
        _, stop = set_aside_stopping_rows(y, groups, fraction, seed=0)
        assert abs(len(np.unique(groups[stop])) - images) < 1
        folds = StratifiedGroupKFold(round(1 / fraction), shuffle=True, random_state=0).split(y, y, groups)
        np.testing.assert_array_equal(stop, next(folds)[1])  # scikit-learn's first fold, as it makes it
    for fraction in (0, 0.6):
        with pytest.raises(ValueError, match="validation_fraction must be above 0 and at most 0.5"):
            set_aside_stopping_rows(y, groups, fraction, seed=0)


def test_the_loss_matches_the_output_layer():
    for n_classes, loss in [(2, "binary_crossentropy"), (3, "sparse_categorical_crossentropy")]:
        model = keras.Sequential([keras.Input((4,)), output_layer(n_classes)])
        assert compile_classifier(model, n_classes, keras.optimizers.Adam()) is model
        assert model.loss == loss
        assert model.output_shape == (None, 1 if n_classes == 2 else n_classes)


def test_probabilities_of_one_sigmoid_unit_come_as_two_columns_in_any_batch_count():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), output_layer(2)])
    X = np.random.default_rng(0).normal(size=(70, 3))  # three batches of 32, the last one short
    p = keras_proba(model, X)
    assert p.shape == (70, 2) and p.dtype == np.float64
    np.testing.assert_allclose(p[:, 1], model.predict(X, verbose=0)[:, 0], rtol=1e-5)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=0, atol=1e-12)


def test_the_float64_copy_predicts_what_the_model_does_in_float64_whatever_the_row_order():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.5),
                              output_layer(3)])
    X = np.random.default_rng(0).normal(size=(20, 3))
    copy = uncompiled_copy(model, "float64")
    assert {weight.dtype for weight in copy.weights} == {"float64"}
    assert model.weights[0].dtype == "float32"  # the original is left as it was
    p = keras_proba(copy, X, dtype=np.float64)
    np.testing.assert_allclose(p, keras_proba(model, X), rtol=1e-6)  # float32's rounding apart, the same network
    order = np.random.default_rng(1).permutation(20)
    np.testing.assert_allclose(keras_proba(copy, X[order], dtype=np.float64), p[order], rtol=1e-12, atol=0)


def test_fused_adam_trains_as_keras_adam(tmp_path):
    """The same steps from the same weights, Keras's Adam and the fused kernel, on digits: the same weights
    but for float32 rounding; and a model compiled with it saves and loads with it."""
    X, y = load_digits(n_class=3, return_X_y=True)
    weights = {}
    for name, optimizer in (("keras", keras.optimizers.Adam(1e-2)), ("fused", FusedAdam(1e-2))):
        keras.utils.set_random_seed(0)
        model = compile_classifier(keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                                     output_layer(3)]), 3, optimizer)
        initial = model.get_weights()
        for start in range(0, 320, 32):
            model.train_on_batch(X[start:start + 32] / 16, y[start:start + 32])
        weights[name] = model.get_weights()
    assert model.optimizer.iterations.numpy() == 10
    for before, keras_weight, fused_weight in zip(initial, weights["keras"], weights["fused"]):
        assert np.abs(keras_weight - before).max() > 0.01  # ten steps moved every weight array
        np.testing.assert_allclose(fused_weight, keras_weight, atol=1e-5)
    model.save(tmp_path / "fused.keras")
    assert isinstance(keras.models.load_model(tmp_path / "fused.keras").optimizer, FusedAdam)
    amsgrad = FusedAdam(1e-2, amsgrad=True)  # Keras's own update: the kernel has no AMSGrad
    amsgrad.build(model.trainable_variables)
    amsgrad.apply([np.ones(w.shape, dtype="float32") for w in model.trainable_variables], model.trainable_variables)
    assert amsgrad.iterations.numpy() == 1 and np.all(amsgrad._velocity_hats[0].numpy() > 0)


def test_training_stops_early_and_keeps_the_best_epoch(capsys):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 2, 64)  # labels unrelated to X: validation loss soon rises
    model = compile_classifier(keras.Sequential([keras.Input((4,)), keras.layers.Dense(64, activation="relu"),
                                                 output_layer(2)]), 2, keras.optimizers.Adam(0.05))
    history = train(model, (X, y), (X[:16], 1 - y[:16]), epochs=200, patience=3, batch_size=16, log=True)
    epochs = len(history["val_loss"])
    assert epochs < 200
    best = int(np.argmin(history["val_loss"]))
    assert epochs - 1 - best == 3  # stopped `patience` epochs after the best
    assert model.evaluate(X[:16], 1 - y[:16], verbose=0)[0] == pytest.approx(history["val_loss"][best], rel=1e-4)
    assert capsys.readouterr().out.count("\nepoch ") == epochs - 1  # one line per epoch


def steady_fit(min_delta):
    """Separable data at a small learning rate: the validation loss falls every epoch, by 0.04 to 0.12."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    X = rng.normal(size=(64, 4)) + 2 * y[:, None]
    model = compile_classifier(keras.Sequential([keras.Input((4,)), output_layer(2)]), 2, keras.optimizers.SGD(0.01))
    return train(model, (X, y), (X, y), epochs=8, patience=2, batch_size=16, min_delta=min_delta)


def test_min_delta_stops_once_the_loss_falls_by_less_than_it():
    steady = steady_fit(min_delta=0.0)["val_loss"]
    assert len(steady) == 8 and np.all(np.diff(steady) < 0) and np.diff(steady)[:2].sum() > -0.3
    # The first epoch, then `patience` epochs that stay within 0.3 of it.
    assert len(steady_fit(min_delta=0.3)["val_loss"]) == 3


def test_layers_compute_in_bfloat16_inside_the_block_with_float32_weights_and_in_float32_after():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), output_layer(2)])
    X = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    dense = model.layers[0]
    full = keras.ops.convert_to_numpy(dense(X))
    with computing_in([dense], "bf16"):
        halved = dense(X)
        assert keras.backend.standardize_dtype(halved.dtype) == "bfloat16" and dense.kernel.dtype == "float32"
    assert dense.compute_dtype == "float32"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(dense(X)), full)
    halved = keras.ops.convert_to_numpy(keras.ops.cast(halved, "float32"))
    np.testing.assert_allclose(halved, full, rtol=2e-2, atol=2e-2)


def test_random_views_give_every_image_once_per_epoch_as_one_of_its_views():
    views = np.arange(10 * 3).reshape(10, 3, 1).astype(np.float32)  # image i's view v is 3 i + v
    y = np.arange(10)
    dataset = RandomViews(Views(views[:, 0], y, views[:, 1:]), batch_size=4, seed=0)
    assert len(dataset) == 3
    picks = []
    for _ in range(4):
        batches = [dataset[i] for i in range(len(dataset))]
        X, labels = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
        assert sorted(labels) == list(range(10))
        np.testing.assert_array_equal(X[:, 0] // 3, labels)  # each row is a view of its own image
        picks.append(X[:, 0] % 3)
        dataset.on_epoch_end()
    assert len(np.unique(np.concatenate(picks))) == 3  # every view gets used


def test_balanced_class_weights_are_n_over_classes_times_count_by_class_index():
    assert class_weights("balanced", ["cat", "dog"], ["dog"] * 6 + ["cat"] * 2) == {0: 2.0, 1: 8 / 12}
    assert class_weights({"cat": 3.0, "dog": 1.0}, ["cat", "dog"], ["dog", "cat"]) == {0: 3.0, 1: 1.0}
    assert class_weights(None, [0, 1], [0, 1, 1]) is None
    with pytest.raises(PipelineError, match="class_weight is 'equal': use balanced"):
        class_weights("equal", [0, 1], [0, 1])


def test_class_weights_weight_training_batches_of_random_views_and_the_stopping_loss():
    """Fine-tuning's PyDataset takes them too; early stopping watches the same weighted loss it minimises."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = np.array([0] * 24 + [1] * 8)
    views = (rng.normal(size=(32, 2, 4)) + y[:, None, None]).astype(np.float32)
    weights = class_weights("balanced", [0, 1], y)
    model = compile_classifier(keras.Sequential([keras.Input((4,)), output_layer(2)]), 2, keras.optimizers.Adam(0.05))
    stop_X, stop_y = views[:, 0], y
    history = train(model, RandomViews(Views(views[:, 0], y, views[:, 1:]), 8, seed=0), (stop_X, stop_y),
                    epochs=3, patience=5, class_weight=weights)
    sample_weight = np.where(stop_y == 1, weights[1], weights[0])
    weighted = model.evaluate(stop_X, stop_y, sample_weight=sample_weight, verbose=0)[0]
    assert min(history["val_loss"]) == pytest.approx(weighted, rel=1e-4)  # the best epoch's weights are kept
    assert weighted != pytest.approx(model.evaluate(stop_X, stop_y, verbose=0)[0], rel=1e-2)


def noisy_fit(patience=2, epochs=50):
    """A model, data and stopping data on which validation loss soon rises: training stops early."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 2, 64)
    model = compile_classifier(keras.Sequential([keras.Input((4,)), keras.layers.Dense(64, activation="relu"),
                                                 output_layer(2)]), 2, keras.optimizers.Adam(0.05))
    return lambda curves=None: train(model, (X, y), (X[:16], 1 - y[:16]), epochs=epochs, patience=patience,
                                     batch_size=16, curves=curves)


def test_training_with_a_curves_folder_writes_dvclive_curves_one_row_per_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no DVC project here: DVCLive only writes files
    history = noisy_fit()(curves=live.emptied("results/dense/live"))
    epochs = len(history["loss"])
    assert 3 <= epochs < 50
    metrics = tmp_path / "results/dense/live/plots/metrics"
    assert sorted(p.relative_to(metrics).as_posix() for p in metrics.rglob("*.tsv")) == [
        "eval/accuracy.tsv", "eval/loss.tsv", "train/accuracy.tsv", "train/loss.tsv"]
    val_loss = pd.read_csv(metrics / "eval/loss.tsv", sep="\t")
    assert val_loss["step"].tolist() == list(range(epochs))
    np.testing.assert_allclose(val_loss["loss"], history["val_loss"], rtol=1e-6)
    np.testing.assert_allclose(pd.read_csv(metrics / "train/loss.tsv", sep="\t")["loss"], history["loss"], rtol=1e-6)
    # The summary is the epoch early stopping went back to, as the row's model is, not the last one.
    best = int(np.argmin(history["val_loss"]))
    assert best < epochs - 1
    summary = json.loads((tmp_path / "results/dense/live/metrics.json").read_text())
    assert summary["step"] == best
    assert summary["eval"]["loss"] == pytest.approx(history["val_loss"][best], rel=1e-6)
    assert summary["train"]["accuracy"] == pytest.approx(history["accuracy"][best], rel=1e-6)
    # DVCLive only: no CSV of our own, no dvc.yaml (the project's declares these files), nothing else.
    assert sorted(p.name for p in (tmp_path / "results/dense/live").iterdir()) == ["metrics.json", "plots"]
    assert [p.name for p in tmp_path.rglob("*.csv")] == []


def test_each_fit_given_a_folder_starts_its_curves_afresh_and_a_fit_without_one_logs_nothing(tmp_path, monkeypatch):
    """A folder reused by a longer fit, then a 2-epoch one: only the last fit's curves remain."""
    monkeypatch.chdir(tmp_path)
    folder = live.emptied("live")
    noisy_fit(epochs=50)(curves=folder)  # stops after some epochs
    last = noisy_fit(epochs=2)(curves=folder)
    assert len(pd.read_csv(tmp_path / "live/plots/metrics/train/loss.tsv", sep="\t")) == 2
    np.testing.assert_allclose(live.read_curves(tmp_path / "live")["val_loss"], last["val_loss"], rtol=1e-6)
    noisy_fit(epochs=2)()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live"]


def test_views_read_from_the_file_a_batch_at_a_time_are_the_batches_of_the_arrays_read_whole(tmp_path):
    """h5py reads a batch's rows only in increasing order: each batch is still every image in its random place."""
    rng = np.random.default_rng(0)
    X, copies = rng.normal(size=(12, 3, 3, 2)), rng.normal(size=(12, 2, 3, 3, 2))
    y = rng.integers(0, 3, 12)
    file = tmp_path / "train.h5"
    store.write(file, [{INTERMEDIATE: X[:5], f"{INTERMEDIATE}_augmented": copies[:5]},
                       {INTERMEDIATE: X[5:], f"{INTERMEDIATE}_augmented": copies[5:]}],
                list(y), [f"train/{i}.png" for i in range(12)], ["a", "b", "c"], meta={}, started=0.0)
    rows = rng.random(12) < 0.7  # the images fine-tuning fits on
    whole = np.concatenate([X[:, None], copies], axis=1).astype(np.float32)[rows]  # as the arrays were fitted on
    with store.opened(file, INTERMEDIATE) as split:
        assert isinstance(split.X, h5py.Dataset)
        dataset = RandomViews(Views(split.X, split.y, split.augmented, rows=rows), batch_size=4, seed=0)
        for _ in range(3):
            for index in range(len(dataset)):
                batch, labels = dataset[index]
                at = dataset.order[index * 4:(index + 1) * 4]
                np.testing.assert_array_equal(batch, whole[at, dataset.pick[at]])
                np.testing.assert_array_equal(labels, y[rows][at])
            dataset.on_epoch_end()
        stopping = InOrder(Views(split.X, split.y, rows=~rows), batch_size=4)
        np.testing.assert_array_equal(np.concatenate([stopping[i][0] for i in range(len(stopping))]),
                                      X[~rows].astype(np.float32))
