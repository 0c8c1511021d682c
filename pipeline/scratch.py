"""The baseline: the classic tutorial's small CNN trained from scratch, with augmentation."""
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from pipeline import PipelineError, augment, networks
from pipeline.quiet_keras import keras

FILTERS = (32, 32, 64)
MIN_INPUT_SIZE = 22  # three 3x3 convolutions, each followed by halving, leave at least one pixel
# Keras's name for computing in bfloat16 with float32 weights (the output layer stays float32).
DTYPE_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16"}


class ScratchCNN(ClassifierMixin, BaseEstimator):
    """The seed tutorial's small CNN: three conv layers (32, 32, 64 filters) with max pooling, dense 64, dropout 0.5.

    Trained as the tutorial trains it: RMSprop at 1e-3, batches of 16, the random transforms of
    `augmentation` (params.yaml's augment section) applied to training batches only (Keras skips
    them at inference); plus early stopping on images it does not train on. `precision` 'bf16'
    computes in bfloat16 with float32 weights, about twice as fast on CPUs with bfloat16 instructions.
    `class_weight` 'balanced' weights each class by n_images / (n_classes * its images) (networks.class_weights).
    """

    def __init__(self, augmentation=None, epochs=100, patience=10, batch_size=16, learning_rate=1e-3,
                 precision="fp32", validation_fraction=0.15, class_weight=None, random_state=0):
        self.augmentation = augmentation
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.precision = precision
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state

    def _build(self, input_size, n_classes):
        random_layers = augment.model_layers(self.augmentation, self.random_state) if self.augmentation else []
        dtype = DTYPE_POLICIES[self.precision]
        convs = []
        for filters in FILTERS:
            convs += [keras.layers.Conv2D(filters, 3, activation="relu", dtype=dtype),
                      keras.layers.MaxPooling2D(dtype=dtype)]
        return keras.Sequential([
            keras.Input((input_size, input_size, 3)),
            *random_layers,
            keras.layers.Rescaling(1 / 255, dtype=dtype),
            *convs,
            keras.layers.Flatten(dtype=dtype),
            keras.layers.Dense(64, activation="relu", dtype=dtype),
            keras.layers.Dropout(0.5, dtype=dtype),
            networks.output_layer(n_classes),
        ], name="scratch_cnn")

    def fit(self, X, y, validation=None):
        """X: (images, size, size, 3) in 0-255; validation: (X, y) for early stopping, else a slice of X."""
        if X.shape[1] < MIN_INPUT_SIZE:
            raise PipelineError(f"the scratch CNN needs input_size {MIN_INPUT_SIZE} or more, not {X.shape[1]}")
        self.classes_, y_index = np.unique(y, return_inverse=True)
        keras.utils.set_random_seed(self.random_state)
        if validation is None:
            fit, stop = networks.set_aside_stopping_rows(y_index, None, self.validation_fraction,
                                                         self.random_state)
            (X, y_index), validation = (X[fit], y_index[fit]), (X[stop], y_index[stop])
        else:
            validation = (validation[0], np.searchsorted(self.classes_, validation[1]))
        n_classes = len(self.classes_)
        weights = networks.class_weights(self.class_weight, self.classes_, self.classes_[y_index])
        self.model_ = networks.compile_classifier(self._build(X.shape[1], n_classes), n_classes,
                                                  keras.optimizers.RMSprop(self.learning_rate))
        self.history_ = networks.train(self.model_, (X, y_index), validation, self.epochs,
                                       self.patience, self.batch_size, log=True, class_weight=weights)
        return self

    def predict_proba(self, X):
        return networks.proba(self.model_, X)
