"""Fine-tuning the backbone's top block together with a dense head already trained on its features.

The layers up to the backbone's intermediate one stay frozen, so their output
for every image (and augmented copy) is computed once by the features stage; training then runs
only the top part and the head. The trained layers are shared with a whole-network model, which is
what gets saved and labels new images. pipeline.features.backbone's registry says where each network is cut.
"""
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler

from pipeline import PipelineError, paths
from pipeline.data import catalog, duplicates
from pipeline.data.images import load_images
from pipeline.features import backbone, extraction, fusion, store
from pipeline.modeling import evaluation, networks, selection_images
from pipeline.modeling.evaluation import average_with_mirror
from pipeline.modeling.heads import DenseHead
from pipeline.modeling.saved_model import SavedModel
from pipeline.quiet_keras import keras

# FineTuner's parameters that come from the dense head and the features, not from params.yaml.
FIXED = ("head", "weights", "input_size", "pooling", "precision", "expected_sha256", "random_state", "backbone")


def head_layers(head):
    """Keras layers doing what a fitted (scaler, DenseHead) scikit-learn pipeline does."""
    *scalers, (_, dense) = head.steps
    if not isinstance(dense, DenseHead):
        raise PipelineError(f"fine-tuning needs a head of type dense, not {type(dense).__name__}")
    if any(isinstance(scaler, StandardScaler) for _, scaler in scalers):
        # As seen on mri-alzheimer (benchmarks/results.md, figures behind the code).
        raise PipelineError(
            "fine-tuning needs a dense head with scale: l2 or none; standardising blows up the "
            "features that barely varied in training as soon as the top block changes, and training diverges"
        )
    return [keras.layers.UnitNormalization() for _ in scalers] + [dense.model_]


class FineTuner(ClassifierMixin, BaseEstimator):
    """The backbone's top part + a pretrained dense head, trained with SGD on the cached intermediate output.

    `class_weight` 'balanced' weights each class by n_images / (n_classes * its images) (networks.class_weights).
    Early stopping counts an epoch as better only when its validation loss is more than `min_delta` below the best.
    `precision` 'bf16' trains the top block in bfloat16 (its weights stay float32, and so does the saved model).
    """

    def __init__(self, head=None, weights="imagenet", input_size=150, pooling="flatten",
                 learning_rate=1e-4, momentum=0.9, epochs=20, patience=3, min_delta=0.0, batch_size=32,
                 class_weight=None, precision="fp32", expected_sha256=None, random_state=0,
                 backbone=backbone.DEFAULT):
        self.head = head
        self.weights = weights
        self.input_size = input_size
        self.pooling = pooling
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.epochs = epochs
        self.patience = patience
        self.min_delta = min_delta
        self.batch_size = batch_size
        self.class_weight = class_weight
        self.precision = precision
        self.expected_sha256 = expected_sha256
        self.random_state = random_state
        self.backbone = backbone

    def build(self):
        """Set model_ (preprocessed images -> probabilities) and cached_ (intermediate output -> the same).

        Both share their layers: training cached_ trains model_."""
        entry = backbone.get(self.backbone)
        base = backbone.conv_base(self.weights, self.input_size, entry.name)
        if self.expected_sha256 and backbone.weights_digest(base) != self.expected_sha256:
            raise PipelineError(
                f"the {entry.name} weights differ from the ones the cached features were made with: "
                f"run `dvc repro features` (or set the same {entry.weights_env})"
            )
        keras.utils.set_random_seed(self.random_state)  # after the base: weights 'random' reseed to draw theirs
        top_part = backbone.top_block(base, entry.name)
        tuned = {id(layer) for layer in backbone.tuned_layers(base, entry.name)}
        for layer in base.layers:
            layer.trainable = id(layer) in tuned
        head = keras.Sequential([backbone.pooling_layer(self.pooling), *head_layers(self.head)], name="head")
        self.model_ = keras.Model(base.input, head(base.output), name=f"{entry.name}_finetuned")
        self.cached_ = keras.Model(top_part.input, head(top_part.output), name="top_and_head")
        return self

    def fit(self, views, validation, curves=None):
        """`views`: the training images' intermediate outputs (networks.Views, read a batch at a time);
        `validation`: the same, or (intermediate output, labels), to stop early;
        `curves`: a pipeline.modeling.live.Folder for the learning curves."""
        self.classes_ = self.head.classes_
        weights = networks.class_weights(self.class_weight, self.classes_, views.y)  # before the backbone loads
        self.build()
        head = self.cached_.get_layer("head")  # stays float32: it is small, and its output layer must
        top = [layer for layer in self.cached_.layers
               if layer is not head and not isinstance(layer, keras.layers.InputLayer)]
        with networks.computing_in(top, self.precision):
            networks.compile_classifier(self.cached_, len(self.classes_),
                                        keras.optimizers.SGD(self.learning_rate, momentum=self.momentum))
            data = networks.RandomViews(views, self.batch_size, self.random_state)
            self.history_ = networks.train(self.cached_, data, validation, self.epochs, self.patience, log=True,
                                           class_weight=weights, curves=curves, min_delta=self.min_delta)
        return self

    def predict_proba(self, intermediate, flipped=None):
        """Probabilities from the intermediate output; with `flipped` (the mirror images'), their average."""
        return average_with_mirror(lambda views: networks.keras_proba(self.cached_, views), intermediate, flipped)


def seconds_per_image(model, inputs, labels, n_classes, repeats=2):
    """Time of one training step per image (after a warm-up step); the weights are left as they were."""
    networks.compile_classifier(model, n_classes, keras.optimizers.SGD(0.0))  # a zero step: timing only
    model.train_on_batch(inputs, labels)
    start = time.perf_counter()
    for _ in range(repeats):
        model.train_on_batch(inputs, labels)
    return (time.perf_counter() - start) / (repeats * len(inputs))


def speedup(tuner, images, intermediate, labels):
    """Training-step time per image of the full model and of the cached path, on the same images."""
    n_classes = len(tuner.classes_)
    full = seconds_per_image(tuner.model_, backbone.preprocess(images, tuner.backbone), labels, n_classes)
    cached = seconds_per_image(tuner.cached_, intermediate, labels, n_classes)
    return {"full_seconds_per_image": full, "cached_seconds_per_image": cached, "speedup": full / cached}


def fine_tune(head_name, settings, data_dir, seed, tta, curves=None, selection=0.0, precision="fp32"):
    """Fine-tune the backbone's top block with the trained dense head `head_name`, on the cached features.

    `settings`: the row's FineTuner settings; `precision`: 'fp32' or 'bf16', what training computes in.
    The fraction `selection` of the training images (pipeline.modeling.selection_images) is left out of
    everything, the starting head's fit included.
    Returns (the SavedModel, which takes images, its metrics, its held-out predictions, its probabilities on the
    selection images); scored on the held-out split with the mirror images averaged in if `tta`.
    `curves`: a pipeline.modeling.live.Folder for the learning curves.
    The intermediate outputs stay in their files, read a batch at a time, so memory does not grow with the images.
    """
    keras.utils.set_random_seed(seed)  # the head's dropout draws its own seed as it is unpickled: the same each run
    head = SavedModel.load(paths.model_file(head_name))
    heldout_file = store.heldout_file()
    if heldout_file is None:
        raise PipelineError("fine-tuning is scored on a test or validation split and there is none: "
                            "set data.split.test above 0, or finetune: {} in params.yaml")
    with ExitStack() as files:
        train = files.enter_context(store.opened(paths.features_file("train"), backbone.INTERMEDIATE))
        heldout = files.enter_context(store.opened(heldout_file, backbone.INTERMEDIATE))
        meta = train.meta
        first = fusion.parts(meta)[0]  # with fused features, fine-tuning continues the first listed backbone
        selected = selection_images.mask(train.paths, train.y, train.classes, selection, seed, "fine-tuning")
        dense = starting_head(head.model, selected)
        tuner = FineTuner(dense, meta["weights"], int(meta["input_size"]), first["pooling"], precision=precision,
                          expected_sha256=first["weights_sha256"], random_state=seed,
                          backbone=first.get("backbone", backbone.DEFAULT), **settings)
        start = time.perf_counter()
        fit, validation = stopping_data(train, dense[-1], selected, files)
        tuner.fit(networks.Views(train.X, train.y, train.augmented, rows=fit), validation, curves=curves)
        seconds = time.perf_counter() - start
        tta = tta and heldout.flipped is not None
        proba = tuner.predict_proba(heldout.X, heldout.flipped if tta else None)
        scores, predictions = evaluation.scores_and_predictions(proba, heldout, train.classes, heldout.meta["split"])
        chosen_table, chosen_scores = selection_images.scored(
            tuner.predict_proba, networks.Views(train.X, train.y, rows=selected), train.y[selected],
            np.asarray(train.paths)[selected], train.classes)
        sample = slice(0, tuner.batch_size)
        images = load_images([Path(data_dir) / p for p in train.paths[sample]], tuner.input_size)
        refit = ([f"on {tuner.backbone}'s features"] * ("fusion" in meta)
                 + ["without the selection images"] * bool(selected.any()))
        refitted = f" refitted {' '.join(refit)}" if refit else ""
        metrics = {
            "type": "finetune",
            "approach": f"fine-tuned {tuner.backbone} from {backbone.get(tuner.backbone).tuned_from} + {head_name}"
                        f"{refitted}",
            "heldout": scores, "selection": chosen_scores, "fit_seconds": seconds,
            "epochs": len(tuner.history_["loss"]), "tta": tta, "precision": tuner.precision,
            "training_views": 1 + (0 if train.augmented is None else train.augmented.shape[1]),
            **speedup(tuner, images, train.X[sample], train.y[sample]),
        }
        model = SavedModel(taking_images(tuner.model_, tuner.backbone), train.classes, tuner.input_size, tta=tta,
                           quantized=quantized_front(tuner, first))
        return model, evaluation.to_builtin(metrics), predictions, chosen_table


def quantized_front(tuner, meta):
    """SavedModel's `quantized` for features extracted in int8 (`meta`: the fine-tuned backbone's provenance):
    the quantized network that made the intermediate output the tuner was scored on, and the tuner's model of it."""
    if meta["precision"] != "int8":
        return None
    network = store.read_networks(paths.features_file("train"))[tuner.backbone]
    return extraction.quantized(network, tuner.input_size, tuner.pooling, tuner.backbone), tuner.cached_


def starting_head(head, selected):
    """The dense head `head` to start from: fitted again, same settings and seed, where it saw what it must not.

    The head of the train stage saw every training image, the selection images (`selected`) too, and with
    fused features it reads features that one fine-tuned network does not make. The refit leaves the
    selection images out and reads the first backbone's part alone, so fine-tuning starts from a head
    already trained on what it will see, as it needs, that never saw the images the report chooses on.
    """
    with store.opened(paths.features_file("train")) as pooled:
        fused = "fusion" in pooled.meta
        if not fused and not selected.any():
            return head

        def first_part(array):  # of fused features only the first backbone's columns are read
            return None if array is None else fusion.first_block(array, pooled.meta)[:]
        views = replace(pooled, X=first_part(pooled.X), augmented=first_part(pooled.augmented), flipped=None).views()
    views = views[~selected]
    groups = duplicates.image_groups(pooled.paths, duplicates.read(paths.DUPLICATES))[~selected]
    n_views = views.shape[1]
    return evaluation.fit(head, views.reshape(-1, views.shape[-1]), np.repeat(pooled.y[~selected], n_views),
                          groups=np.repeat(groups, n_views))[0]


def stopping_data(train, dense, selected, files):
    """(training images to fit on, networks.Views of the intermediate output to stop early on); neither holds a
    `selected` one.

    The validation split when there is one besides the reported split. Else the training images
    the dense head itself stopped on (whole images, copies together): they were left out of the
    head's fit and are left out of this one, so the stopping images are unseen by both.
    `train`: the opened training features; a validation file is opened in `files` (an ExitStack).
    """
    split = catalog.separate_validation_split(s for s in catalog.SPLITS if paths.features_file(s).exists())
    if split:
        stop = files.enter_context(store.opened(paths.features_file(split), backbone.INTERMEDIATE))
        return ~selected, networks.Views(stop.X, stop.y)
    groups = duplicates.image_groups(train.paths, duplicates.read(paths.DUPLICATES))
    held = np.isin(groups, dense.stopping_groups_)  # outside the selection images: the head was refitted without
    return ~held & ~selected, networks.Views(train.X, train.y, rows=held)


def taking_images(tuned, name=backbone.DEFAULT):
    """The fine-tuned network as a model of RGB images in 0-255, the backbone's own preprocessing its first layers."""
    images = keras.Input(tuned.input_shape[1:], name="images")
    return keras.Model(images, tuned(backbone.preprocessing_function(name)(images)), name=f"{name}_finetuned")
