"""What every Keras classifier here shares: its output layer, loss, early stopping and probabilities."""
import math
import warnings
from contextlib import contextmanager

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.class_weight import compute_class_weight

from pipeline import PipelineError
from pipeline.quiet_keras import keras

LR_DROP = 0.3  # train's learning-rate cut on a plateau of the validation loss
# Keras's name for computing in bfloat16 with float32 weights (the output layer stays float32).
DTYPE_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16"}


@keras.saving.register_keras_serializable(package="pipeline")
class FusedAdam(keras.optimizers.Adam):
    """Keras's Adam, each variable's update one TensorFlow kernel (ResourceApplyAdam) computing Keras's formula.

    Keras's update is a dozen element-wise passes over each variable and its two moments; on a dense head's
    40,192 x 256 first layer they were most of a training step (45 ms of a batch of 32), the fused kernel one
    pass (20 ms; the weights after 150 steps within 1e-6 of Keras's: benchmarks/results.md, run 10).
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:  # a variant the fused kernel does not compute
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        step = keras.ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=keras.ops.power(keras.ops.cast(self.beta_1, dtype), step),
            beta2_power=keras.ops.power(keras.ops.cast(self.beta_2, dtype), step),
            lr=keras.ops.cast(learning_rate, dtype), beta1=keras.ops.cast(self.beta_1, dtype),
            beta2=keras.ops.cast(self.beta_2, dtype), epsilon=keras.ops.cast(self.epsilon, dtype),
            grad=keras.ops.cast(gradient, dtype))


def output_layer(n_classes):
    """One sigmoid unit for two classes, else a softmax over the classes."""
    if n_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid")
    return keras.layers.Dense(n_classes, activation="softmax")


def compile_classifier(model, n_classes, optimizer):
    """Compile with the loss that matches output_layer(n_classes); returns the model."""
    model.compile(
        optimizer=optimizer,
        loss="binary_crossentropy" if n_classes == 2 else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def class_weights(setting, classes, y):
    """Keras's class_weight ({class index: weight}) for an estimator's `class_weight` setting, or None.

    'balanced': n_samples / (n_classes * count) from the training labels `y` (scikit-learn's
    compute_class_weight), so that every class weighs as much in the loss; a {label: weight} mapping
    as scikit-learn's estimators take it; None: unweighted. `classes`: the labels, in class-index order.
    """
    if setting is None:
        return None
    if not (setting == "balanced" or isinstance(setting, dict)):
        raise PipelineError(f"class_weight is {setting!r}: use balanced, or leave it out for no weights")
    return {index: float(weight) for index, weight in
            enumerate(compute_class_weight(setting, classes=np.asarray(classes), y=np.asarray(y)))}


@contextmanager
def computing_in(layers, precision):
    """Inside the block `layers` compute in `precision` ('fp32' or 'bf16'); after it, as they did before.

    Their weights stay float32 throughout (mixed_bfloat16 casts them as it reads them), so a float32 model
    trained in bfloat16 is saved, scored and shipped as a float32 one.
    """
    before = [layer.dtype_policy for layer in layers]
    for layer in layers:
        layer.dtype_policy = DTYPE_POLICIES[precision]
    try:
        yield
    finally:
        for layer, policy in zip(layers, before):
            layer.dtype_policy = policy


def train(model, data, validation, epochs, patience, batch_size=None, log=False, class_weight=None,
          lr_patience=None, curves=None, min_delta=0.0, seed=None):
    """Fit with early stopping on validation loss, keeping the best epoch; returns the history.

    `data`: (inputs, targets) or Views, whose rows `seed` shuffles every epoch (fit_views), or a
    keras.utils.PyDataset (RandomViews, which shuffles itself); `validation`: (inputs, labels) or Views.

    `log` prints one line per epoch, for the long trainings (fine-tuning, the scratch CNN). With `curves`
    (a pipeline.modeling.live.Folder) the curves also go to DVCLive's files there as the epochs end.
    `class_weight` ({class index: weight}, as class_weights gives) weights the training rows and the
    validation loss alike, so that early stopping watches the loss being minimised. `lr_patience`
    epochs without a better validation loss cut the learning rate to LR_DROP times itself. A validation loss
    counts as better only when it falls more than `min_delta` below the best so far.
    """
    data, validation = (Views(*part) if isinstance(part, tuple) else part for part in (data, validation))
    weights = None if class_weight is None else np.array(
        [class_weight.get(int(label), 1.0) for label in np.asarray(validation.y).ravel()], dtype=np.float32)
    validation = InOrder(validation, batch_size or 32, weights)  # Keras's own validation batch size
    stopping = keras.callbacks.EarlyStopping(patience=patience, min_delta=min_delta, restore_best_weights=True)
    callbacks = [stopping]
    if lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=LR_DROP, patience=lr_patience, min_lr=1e-5))
    if curves is not None:
        curves = curves.open()
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: curves.epoch_end(logs),
            # The weights early stopping restores are the best epoch's (or the last, if none was watched).
            on_train_end=lambda logs: curves.end(stopping.best_epoch if stopping.best_weights is not None
                                                 else len(curves.epochs) - 1)))
    if log:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: print(
            f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4g}" for k, v in logs.items()), flush=True)))
    if isinstance(data, keras.utils.PyDataset):
        return model.fit(data, validation_data=validation, epochs=epochs, batch_size=batch_size,
                         class_weight=class_weight, callbacks=callbacks, verbose=0).history
    return fit_views(model, data, validation, epochs, batch_size or 32, class_weight, callbacks, seed)


def fit_views(model, views, validation, epochs, batch_size, class_weight, callbacks, seed):
    """model.fit's epochs over the images of `views` (Views), shuffled every epoch by `seed`, one
    train_on_batch at a time.

    model.fit hands arrays to tf.data, and TensorFlow keeps that dataset, data and all, after the fit: 0.8 GB
    for each CV fold of a dense head at 4,000 photos, not freed by gc or clear_session (benchmarks/results.md,
    run 7). A batch passed to train_on_batch is freed with it. The logs are model.fit's: each epoch's loss
    and metrics averaged over its batches by their rows, and the same of `validation` (InOrder) as val_*.
    """
    history = keras.callbacks.History()
    callbacks = keras.callbacks.CallbackList([*callbacks, history], model=model, epochs=epochs, verbose=0)
    rng, logs = np.random.default_rng(seed), {}
    model.stop_training = False
    callbacks.on_train_begin()
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        order = rng.permutation(len(views))
        batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
        logs = averaged([(model.train_on_batch(views[at], views.y[at], class_weight=class_weight,
                                               return_dict=True), len(at)) for at in batches])
        watched = map(validation.__getitem__, range(len(validation)))  # (inputs, labels[, weights]) batches
        logs.update({f"val_{name}": value for name, value in averaged(
            [(model.test_on_batch(*batch, return_dict=True), len(batch[1])) for batch in watched]).items()})
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    return history.history


def averaged(batch_logs):
    """{name: mean} of (logs, rows) pairs, each batch weighted by its rows, as Keras averages an epoch's."""
    rows = sum(count for _, count in batch_logs)
    return {name: sum(logs[name] * count for logs, count in batch_logs) / rows for name in batch_logs[0][0]}


def uncompiled_copy(model, dtype=None):
    """A new Sequential of `model`'s layers (a Sequential) and trained weights, not compiled, computing in `dtype`
    where given.

    Uncompiled, it is saved without an optimizer: no moments (Adam's are twice the weights) and no class of
    this package to find when loading (keras.models.clone_model would compile the copy as the model was). In
    float64 each row's output ignores its neighbours; in float32 it need not: on a CPU without AVX-512 the
    matrix kernels sum a batch's last rows in another order, so reordering the rows moved a dense head's
    probabilities past scikit-learn's tolerance for "predictions do not depend on row order"
    (benchmarks/results.md, figures behind the code); float64's rounding stays far below it.
    """
    def copied(layer):
        return layer.__class__.from_config({**layer.get_config(), **({"dtype": dtype} if dtype else {})})

    copy = keras.Sequential([keras.Input(model.input_shape[1:], dtype=dtype), *map(copied, model.layers)],
                            name=model.name)
    copy.set_weights(model.get_weights())
    return copy


def keras_proba(model, X, dtype=np.float32):
    """(len(X), n_classes) float64 probabilities that sum to 1 from a Keras classifier, also of one sigmoid unit."""
    # Called batch by batch: model.predict builds a tf.data pipeline per call, which costs more
    # than a small head's whole prediction. Converted batch by batch too: `X` may be an h5py dataset.
    out = np.concatenate([keras.ops.convert_to_numpy(model(np.asarray(X[start:start + 32], dtype=dtype),
                                                           training=False))
                          for start in range(0, len(X), 32)]).astype(np.float64)
    if out.shape[1] == 1:
        out = np.hstack([1 - out, out])
    return out / out.sum(axis=1, keepdims=True)  # float32 softmax sums to 1 +- 1e-7


def set_aside_stopping_rows(y, groups, fraction, seed):
    """(fit row indices, early-stopping row indices), with whole groups on either side.

    `groups` labels each row's image: an image's augmented copies, or duplicate images, share
    one, so that early stopping never watches a twin of a row it trains on; None makes every row
    its own group. The stopping rows are one fold of scikit-learn's StratifiedGroupKFold with
    round(1 / fraction) folds, so `fraction` (above 0, at most 0.5) is their share rounded to
    one over a whole number, and the classes keep their shares as far as whole groups allow.
    """
    if not 0 < fraction <= 0.5:
        raise ValueError(f"validation_fraction must be above 0 and at most 0.5, not {fraction!r}")
    y = np.asarray(y)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    # Fewer folds, and so a larger stopping share, where there are too few images (or of every class) to fill them.
    folds = max(2, min(round(1 / fraction), len(np.unique(groups)), np.unique(y, return_counts=True)[1].max()))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class with fewer groups than folds is still split, just less evenly
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        return next(splitter.split(y, y, groups))


class Views:
    """Chosen images of a split as their views (image or augmented copy), read a batch at a time.

    `X` (images, ...) and `augmented` (images, copies, ...) may be h5py datasets: then only the rows a batch
    asks for are read, so memory does not grow with the images. h5py takes a list of rows only in
    increasing order, so each batch is read sorted and put back in the order asked. `rows`: the images
    chosen (indices or a boolean mask), all by default.
    """

    def __init__(self, X, y, augmented=None, rows=None):
        self.X, self.augmented = X, augmented
        self.rows = np.arange(len(y)) if rows is None else np.arange(len(y))[rows]
        self.y = np.asarray(y)[self.rows]
        self.count = 1 if augmented is None else 1 + augmented.shape[1]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        """The chosen images at `index` (positions, or a slice of them) as themselves: Views read as an array."""
        at = np.arange(len(self))[index]
        return self.take(at, np.zeros(len(at), dtype=int))

    def take(self, index, view):
        """The chosen images at positions `index`, each as its view `view` (0: the image, k: its k-th copy)."""
        rows = self.rows[index]
        out = np.empty((len(rows), *self.X.shape[1:]), dtype=self.X.dtype)
        for number in np.unique(view):
            at = np.flatnonzero(view == number)
            at = at[np.argsort(rows[at])]
            out[at] = self.X[rows[at]] if number == 0 else self.augmented[rows[at], number - 1]
        return out


class InOrder(keras.utils.PyDataset):
    """Views' images in order, as themselves, in batches (with `weights` per image, the sample weights)."""

    def __init__(self, views, batch_size, weights=None):
        super().__init__()
        self.views, self.batch_size, self.weights = views, batch_size, weights

    def __len__(self):
        return math.ceil(len(self.views) / self.batch_size)

    def __getitem__(self, index):
        at = slice(index * self.batch_size, (index + 1) * self.batch_size)
        batch = (self.views[at], self.views.y[at])
        return batch if self.weights is None else (*batch, self.weights[at])


class RandomViews(keras.utils.PyDataset):
    """Every image of `views` (Views) once per epoch, as one of its views (image or augmented copy) at random."""

    def __init__(self, views, batch_size, seed):
        super().__init__()
        self.views, self.batch_size = views, batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.views) / self.batch_size)

    def __getitem__(self, index):
        at = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.views.take(at, self.pick[at]), self.views.y[at]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.views))
        self.pick = self.rng.integers(0, self.views.count, len(self.views))
