"""Fine-tuning VGG16's block 5 together with a dense head already trained on its features.

Blocks 1-4 stay frozen, so their output for every image (and augmented copy) is computed once
by the features stage; training then runs only block 5 and the head. The trained layers are
shared with a full VGG16 model, which is what gets saved and labels new images.
"""
import time

from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler

from pipeline import PipelineError, backbone, networks
from pipeline.heads import DenseHead
from pipeline.quiet_keras import keras


def head_layers(head):
    """Keras layers doing what a fitted (scaler, DenseHead) scikit-learn pipeline does."""
    *scalers, (_, dense) = head.steps
    if not isinstance(dense, DenseHead):
        raise PipelineError(f"fine-tuning needs a head of type dense, not {type(dense).__name__}")
    if any(isinstance(scaler, StandardScaler) for _, scaler in scalers):
        # Measured on mri-alzheimer: the loss went from 0.007 to 1e6 in two epochs, then NaN.
        raise PipelineError(
            "fine-tuning needs a dense head with scale: l2 or none; standardising blows up the "
            "features that barely varied in training as soon as block 5 changes, and training diverges"
        )
    return [keras.layers.UnitNormalization() for _ in scalers] + [dense.model_]


class FineTuner(ClassifierMixin, BaseEstimator):
    """Block 5 + a pretrained dense head, trained with SGD on cached block-4 outputs."""

    def __init__(self, head=None, weights="imagenet", input_size=150, pooling="flatten",
                 learning_rate=1e-4, momentum=0.9, epochs=20, patience=3, batch_size=32,
                 expected_sha256=None, random_state=0):
        self.head = head
        self.weights = weights
        self.input_size = input_size
        self.pooling = pooling
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.expected_sha256 = expected_sha256
        self.random_state = random_state

    def build(self):
        """Set model_ (images -> probabilities) and cached_ (block 4 output -> the same), sharing layers."""
        keras.utils.set_random_seed(self.random_state)
        base = backbone.conv_base(self.weights, self.input_size)
        if self.expected_sha256 and backbone.weights_digest(base) != self.expected_sha256:
            raise PipelineError(
                "the VGG16 weights differ from the ones the cached features were made with: "
                "run `dvc repro features` (or set the same VGG16_IMAGENET_WEIGHTS)"
            )
        block5 = backbone.top_block(base)
        frozen = True
        for layer in base.layers:
            layer.trainable = not frozen
            frozen = frozen and layer.name != backbone.BLOCK4
        top = keras.Sequential([backbone.pooling_layer(self.pooling), *head_layers(self.head)], name="head")
        self.model_ = keras.Model(base.input, top(base.output), name="vgg16_finetuned")
        self.cached_ = keras.Model(block5.input, top(block5.output), name="block5_and_head")
        return self

    def fit(self, views, y, validation):
        """`views`: (images, views, *block4 shape); `validation`: (block-4 outputs, labels) for early stopping."""
        self.classes_ = self.head.classes_
        self.build()
        networks.compile_classifier(self.cached_, len(self.classes_),
                         keras.optimizers.SGD(self.learning_rate, momentum=self.momentum))
        data = networks.RandomViews(views, y, self.batch_size, self.random_state)
        self.history_ = networks.train(self.cached_, data, validation, self.epochs, self.patience, log=True)
        return self

    def predict_proba(self, block4, flipped=None):
        """Probabilities from block 4's output; with `flipped` (the mirror images'), their average."""
        proba = networks.proba(self.cached_, block4)
        if flipped is not None:
            proba = (proba + networks.proba(self.cached_, flipped)) / 2
        return proba


def seconds_per_image(model, inputs, labels, n_classes, repeats=2):
    """Time of one training step per image (after a warm-up step); the weights are left as they were."""
    networks.compile_classifier(model, n_classes, keras.optimizers.SGD(0.0))  # a zero step: timing only
    model.train_on_batch(inputs, labels)
    start = time.perf_counter()
    for _ in range(repeats):
        model.train_on_batch(inputs, labels)
    return (time.perf_counter() - start) / (repeats * len(inputs))


def speedup(tuner, images, block4, labels):
    """Training-step time per image of the full model and of the cached path, on the same images."""
    n_classes = len(tuner.classes_)
    full = seconds_per_image(tuner.model_, backbone.preprocess(images), labels, n_classes)
    cached = seconds_per_image(tuner.cached_, block4, labels, n_classes)
    return {"full_seconds_per_image": full, "cached_seconds_per_image": cached, "speedup": full / cached}
