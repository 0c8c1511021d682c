"""The baseline: a small CNN trained from scratch on the images, with augmentation."""
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from pipeline import PipelineError
from pipeline.data import augment_layers, catalog
from pipeline.data.images import load_images
from pipeline.features.store import Features
from pipeline.modeling import evaluation, networks, selection_images
from pipeline.modeling.saved_model import SavedModel
from pipeline.quiet_keras import keras

OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
# How the learning rate moves: cut on a plateau of the validation loss (lr_patience), or down a half cosine
# from learning_rate to 0 over `epochs`, which spends a short budget better than waiting for plateaus.
SCHEDULES = ("plateau", "cosine")
# Batch normalisation's moving statistics follow the batches ten times faster than Keras's default
# 0.99: with 0.99 and a few hundred steps they lagged the weights, and every validation image got
# the same class for the first epochs on cats-dogs-small (benchmarks/results.md, run 4).
BN_MOMENTUM = 0.9
BATCH = 256  # images decoded, or scored, at a time


def tutorial_network(dtype):
    """The seed tutorial's: valid 3x3 convolutions of 32, 32, 64 filters with max pooling, dense 64, dropout 0.5."""
    layers = []
    for filters in (32, 32, 64):
        layers += [keras.layers.Conv2D(filters, 3, activation="relu", dtype=dtype),
                   keras.layers.MaxPooling2D(dtype=dtype)]
    return layers + [keras.layers.Flatten(dtype=dtype), keras.layers.Dense(64, activation="relu", dtype=dtype),
                     keras.layers.Dropout(0.5, dtype=dtype)]


def compact_network(dtype):
    """A stride-2 stem, then 3x3 convolutions of 32, 64, 128, 256 filters with batch norm, max pooling between,
    global average pooling and dropout 0.3.

    The stem halves the image before the first full-size convolution, which keeps an epoch's cost near
    the tutorial's (README, Speed); batch norm lets Adam learn at 1e-3; averaging the last map instead of
    a dense layer on its flattened pixels keeps the network smaller than the tutorial's.
    """
    def conv(filters, strides=1):
        return [keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, dtype=dtype),
                keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=dtype), keras.layers.ReLU(dtype=dtype)]
    layers = conv(32, strides=2)
    for filters in (32, 64, 128):
        layers += conv(filters) + [keras.layers.MaxPooling2D(dtype=dtype)]
    return layers + conv(256) + [keras.layers.GlobalAveragePooling2D(dtype=dtype),
                                 keras.layers.Dropout(0.3, dtype=dtype)]


# ScratchCNN's parameters that come from params.yaml's augment:, backbone: and evaluate:, not from the row.
FIXED = ("augmentation", "precision", "random_state")
# name: (layers, the smallest input_size whose last map keeps a pixel)
NETWORKS = {"compact": (compact_network, 16), "tutorial": (tutorial_network, 22)}


class ScratchCNN(ClassifierMixin, BaseEstimator):
    """A small CNN trained from scratch: `network` 'compact' (compact_network) or 'tutorial' (the seed tutorial's).

    The random transforms of `augmentation` (params.yaml's augment section) apply to training
    batches only (Keras skips them at inference); early stopping watches images it does not train
    on. `optimizer` 'adam' or 'rmsprop' at `learning_rate` (the tutorial trains with RMSprop at 1e-3
    in batches of 16), cut to 0.3x after `lr_patience` epochs without a better validation loss (0: never) with
    `schedule` 'plateau', or lowered every step along a half cosine to 0 at the last epoch with 'cosine'.
    `precision` 'bf16' computes in bfloat16 with float32 weights, faster on CPUs with
    bfloat16 instructions (README, Speed). `class_weight` 'balanced' weights each class by
    n_images / (n_classes * its images) (networks.class_weights).
    """

    def __init__(self, augmentation=None, network="compact", optimizer="adam", epochs=60, patience=12,
                 lr_patience=4, batch_size=32, learning_rate=1e-3, schedule="plateau", precision="fp32",
                 validation_fraction=0.15, class_weight=None, random_state=0):
        self.augmentation = augmentation
        self.network = network
        self.optimizer = optimizer
        self.epochs = epochs
        self.patience = patience
        self.lr_patience = lr_patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.precision = precision
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state

    def _build(self, input_size, n_classes):
        random_layers = augment_layers.model_layers(self.augmentation, self.random_state) if self.augmentation else []
        dtype = networks.DTYPE_POLICIES[self.precision]
        return keras.Sequential([
            keras.Input((input_size, input_size, 3)),
            *random_layers,
            keras.layers.Rescaling(1 / 255, dtype=dtype),
            *NETWORKS[self.network][0](dtype),
            networks.output_layer(n_classes),
        ], name="scratch_cnn")

    def _check(self, input_size):
        for setting, value, choices in (("network", self.network, NETWORKS), ("optimizer", self.optimizer, OPTIMIZERS),
                                        ("schedule", self.schedule, SCHEDULES)):
            if value not in choices:
                raise PipelineError(f"the scratch CNN's {setting} is {value!r}: use one of {', '.join(choices)}")
        smallest = NETWORKS[self.network][1]
        if input_size < smallest:
            raise PipelineError(f"the {self.network} scratch CNN needs input_size {smallest} or more, not {input_size}")

    def fit(self, X, y, validation=None, curves=None):
        """X: (images, size, size, 3) in 0-255, an array or an h5py dataset (uint8 keeps a quarter of float32's
        memory), read a batch at a time; validation: (X, y) for early stopping, else a part of X;
        curves: a pipeline.modeling.live.Folder for the learning curves."""
        self._check(X.shape[1])
        self.classes_, y_index = np.unique(y, return_inverse=True)
        keras.utils.set_random_seed(self.random_state)
        if validation is None:
            fit, stop = networks.set_aside_stopping_rows(y_index, None, self.validation_fraction,
                                                         self.random_state)
            train, validation = networks.Views(X, y_index, rows=fit), networks.Views(X, y_index, rows=stop)
        else:
            train = networks.Views(X, y_index)
            validation = networks.Views(validation[0], np.searchsorted(self.classes_, validation[1]))
        n_classes = len(self.classes_)
        weights = networks.class_weights(self.class_weight, self.classes_, self.classes_[train.y])
        data = networks.RandomViews(train, self.batch_size, self.random_state)
        if self.schedule == "cosine":  # the schedule alone moves the rate: no plateau cuts on top
            rate = keras.optimizers.schedules.CosineDecay(self.learning_rate, self.epochs * len(data))
            lr_patience = None
        else:
            rate, lr_patience = self.learning_rate, self.lr_patience
        self.model_ = networks.compile_classifier(self._build(X.shape[1], n_classes), n_classes,
                                                  OPTIMIZERS[self.optimizer](rate))
        self.history_ = networks.train(self.model_, data, validation, self.epochs, self.patience, self.batch_size,
                                       log=True, class_weight=weights, lr_patience=lr_patience, curves=curves)
        return self

    def predict_proba(self, X):
        return networks.keras_proba(self.model_, X)


def train_and_score(cnn, manifest, data_dir, input_size, tta, curves=None, selection=0.0, seed=0):
    """Train `cnn` on the training images of `manifest` at `input_size` px, and score it on the held-out split.

    The fraction `selection` of the training images (pipeline.modeling.selection_images, drawn with `seed`)
    is left out of training and of early stopping, and scored on, once each, for the report's choice. Early
    stopping watches the validation split when there is one besides the held-out split, else a part of the
    other training images (ScratchCNN.fit). The score is the saved network's, as predict runs it, with the
    mirror images averaged in if `tta`. `curves`: a pipeline.modeling.live.Folder for the learning curves.
    Returns (the SavedModel, its metrics, its predictions, its probabilities on the selection images).
    The images are decoded once into a temporary file and read from it a batch at a time, so memory does
    not grow with them.
    """
    classes = catalog.class_names(manifest)
    heldout_split = catalog.heldout_split(manifest["split"])
    if heldout_split is None:
        raise PipelineError("the scratch CNN is scored on a test or validation split and there is none: "
                            "set data.split.test above 0, or scratch: {} in params.yaml")
    with ExitStack() as files:
        folder = Path(files.enter_context(tempfile.TemporaryDirectory(prefix="scratch-images-")))

        def images_of(rows, name, split):
            images = decoded([Path(data_dir) / path for path in rows["path"]], input_size, folder / f"{name}.h5")
            return Features(X=files.enter_context(h5py.File(images, "r"))["images"],
                            y=np.array([classes.index(c) for c in rows["label"]], dtype=int),
                            paths=list(rows["path"]), classes=classes, meta={"split": split})

        def split_images(split):
            return images_of(manifest[manifest["split"] == split], split, split)

        train_rows = manifest[manifest["split"] == "train"]
        selected = selection_images.mask(list(train_rows["path"]), [classes.index(c) for c in train_rows["label"]],
                                         classes, selection, seed, "the scratch CNN")
        train = images_of(train_rows[~selected], "train", "train")
        chosen = images_of(train_rows[selected], "selection", "train")
        heldout = split_images(heldout_split)
        stop_split = catalog.separate_validation_split(manifest["split"])
        stop = split_images(stop_split) if stop_split else None
        start = time.perf_counter()
        cnn.fit(train.X, train.y, validation=stop and (stop.X, stop.y), curves=curves)
        seconds = time.perf_counter() - start
        model = SavedModel(without_augmentation(cnn.model_, cnn.augmentation), classes, input_size, tta=tta)
        proba = np.concatenate([model.predict_proba_arrays(heldout.X[first:first + BATCH])
                                for first in range(0, len(heldout.y), BATCH)])
        chosen_table, chosen_scores = selection_images.scored(lambda X: networks.keras_proba(model.model, X),
                                                              chosen.X, chosen.y, chosen.paths, classes)
    scores, predictions = evaluation.scores_and_predictions(proba, heldout, classes, heldout_split)
    metrics = {"type": "scratch", "approach": "small CNN from scratch", "heldout": scores, "selection": chosen_scores,
               "fit_seconds": seconds, "epochs": len(cnn.history_["loss"]), "tta": tta,
               "input_size": input_size, "precision": cnn.precision}
    return model, evaluation.to_builtin(metrics), predictions, chosen_table


def decoded(files, size, path):
    """The images `files` at `size` px, decoded BATCH at a time into `path` (an HDF5 file of uint8, "images")."""
    with h5py.File(path, "w") as h5:
        images = h5.create_dataset("images", (len(files), size, size, 3), dtype=np.uint8)
        for start in range(0, len(files), BATCH):
            images[start:start + BATCH] = load_images(files[start:start + BATCH], size)
    return path


def without_augmentation(cnn, augmentation):
    """The trained CNN without its random augmentation layers, which leave images as they are at inference.

    That is the model predict loads: it holds only Keras's own layers, so loading it needs no RandomAffine.
    """
    random = tuple(type(layer) for layer in augment_layers.model_layers(augmentation, 0)) if augmentation else ()
    kept = [layer for layer in cnn.layers if not isinstance(layer, random)]
    return keras.Sequential([keras.Input(cnn.input_shape[1:]), *kept], name=cnn.name)
