"""The baseline: the classic tutorial's small CNN trained from scratch, with augmentation."""
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from pipeline import PipelineError, augment, networks
from pipeline.quiet_keras import keras

MIN_INPUT_SIZE = 46  # four 3x3 convolutions, each followed by halving, leave at least one pixel


class ScratchCNN(ClassifierMixin, BaseEstimator):
    """Conv 32-64-128-128 with max pooling, dropout 0.5, dense 512; RMSprop; early stopping.

    `augmentation` is params.yaml's augment section: random transforms applied to training
    batches only (Keras skips them at inference).
    """

    def __init__(self, augmentation=None, epochs=60, patience=8, batch_size=32, learning_rate=1e-4,
                 validation_fraction=0.15, random_state=0):
        self.augmentation = augmentation
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def _build(self, input_size, n_classes):
        random_layers = augment.model_layers(self.augmentation, self.random_state) if self.augmentation else []
        convs = []
        for filters in (32, 64, 128, 128):
            convs += [keras.layers.Conv2D(filters, 3, activation="relu"), keras.layers.MaxPooling2D()]
        return keras.Sequential([
            keras.Input((input_size, input_size, 3)),
            *random_layers,
            keras.layers.Rescaling(1 / 255),
            *convs,
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(512, activation="relu"),
            networks.output_layer(n_classes),
        ], name="scratch_cnn")

    def fit(self, X, y, validation=None):
        """X: (images, size, size, 3) in 0-255; validation: (X, y) for early stopping, else a slice of X."""
        if X.shape[1] < MIN_INPUT_SIZE:
            raise PipelineError(f"the scratch CNN needs input_size {MIN_INPUT_SIZE} or more, not {X.shape[1]}")
        self.classes_, y_index = np.unique(y, return_inverse=True)
        keras.utils.set_random_seed(self.random_state)
        if validation is None:
            fit, stop = networks.split_groups_for_stopping(y_index, None, self.validation_fraction,
                                                           self.random_state)
            (X, y_index), validation = (X[fit], y_index[fit]), (X[stop], y_index[stop])
        n_classes = len(self.classes_)
        self.model_ = networks.compile_classifier(self._build(X.shape[1], n_classes), n_classes,
                                                  keras.optimizers.RMSprop(self.learning_rate))
        self.history_ = networks.train(self.model_, (X, y_index), validation, self.epochs,
                                       self.patience, self.batch_size, log=True)
        return self

    def predict_proba(self, X):
        return networks.proba(self.model_, X)

