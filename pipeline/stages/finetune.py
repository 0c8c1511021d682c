"""Stage finetune@NAME: fine-tune the backbone's top (VGG16's block 5) with a trained dense head, on its cached
intermediate output (VGG16's block 4)."""
import time
from pathlib import Path

import numpy as np

from pipeline import PipelineError, paths
from pipeline.cli import entry_point
from pipeline.config import check_settings, stage_params
from pipeline.data import catalog, duplicates
from pipeline.data.images import load_images
from pipeline.features import backbone, fusion, store
from pipeline.modeling import evaluation, finetune, live, outputs
from pipeline.modeling.saved_model import SavedModel
from pipeline.quiet_keras import keras
from pipeline.stages import run_name

PARAMS = ("data.dir", "evaluate", "finetune.{name}")  # what dvc.yaml's finetune stage lists
FIXED = ("head", "weights", "input_size", "pooling", "expected_sha256", "random_state", "backbone")  # not settings


@entry_point
def main(argv):
    name = run_name(argv, "finetune")
    params = stage_params(PARAMS, name)
    settings = dict(params["finetune"][name])
    head_name = settings.pop("head", None)
    where = f"params.yaml: finetune.{name}"
    if head_name is None or not paths.model_file(head_name).exists():
        raise PipelineError(f"{where}.head must name a dense head under heads: that `dvc repro` trained, "
                            f"not {head_name!r}")
    check_settings(where, settings, set(finetune.FineTuner().get_params()) - set(FIXED))
    head = SavedModel.load(paths.model_file(head_name))
    train = store.read(paths.features_file("train"), backbone.BLOCK4)
    heldout_file = store.heldout_file()
    if heldout_file is None:
        raise PipelineError("fine-tuning is scored on a test or validation split and there is none: "
                            "set data.split.test above 0, or finetune: {} in params.yaml")
    heldout = store.read(heldout_file, backbone.BLOCK4)
    meta, seed = train.meta, params["evaluate"]["seed"]
    first = fusion.parts(meta)[0]  # with fused features, fine-tuning continues the first listed backbone
    dense = head.model if "fusion" not in meta else first_backbone_head(head.model, train.paths)
    tuner = finetune.FineTuner(dense, meta["weights"], int(meta["input_size"]), meta["pooling"],
                               expected_sha256=first["weights_sha256"], random_state=seed,
                               backbone=first.get("backbone", backbone.DEFAULT), **settings)
    start = time.perf_counter()
    fit, validation = stopping_data(train, dense[-1])
    with live.logging_to(live.directory(name)):  # its learning curves, epoch by epoch (DVCLive)
        tuner.fit(train.views()[fit], train.y[fit], validation)
    seconds = time.perf_counter() - start
    tta = params["evaluate"]["tta"] and heldout.flipped is not None
    proba = tuner.predict_proba(heldout.X, heldout.flipped if tta else None)
    scores, predictions = evaluation.outcome(proba, heldout, train.classes, heldout.meta["split"])
    sample = slice(0, tuner.batch_size)
    images = load_images([Path(params["data"]["dir"]) / p for p in train.paths[sample]], tuner.input_size)
    speed = finetune.speedup(tuner, images, train.X[sample], train.y[sample])
    tuned_from = backbone.get(tuner.backbone).tuned_from
    refitted = f" refitted on {tuner.backbone}'s features" if dense is not head.model else ""
    metrics = {
        "type": "finetune", "approach": f"fine-tuned {tuner.backbone} from {tuned_from} + {head_name}{refitted}",
        "heldout": scores,
        "fit_seconds": seconds, "epochs": len(tuner.history_["loss"]), "tta": tta,
        "training_views": int(train.views().shape[1]), **speed,
    }
    model = SavedModel(taking_images(tuner.model_, tuner.backbone), train.classes, tuner.input_size, tta=tta)
    outputs.save(name, model, evaluation.to_builtin(metrics), predictions)
    print(outputs.summary(name, metrics))
    print(f"a training step costs {speed['speedup']:.1f}x less per image from the cached intermediate output")


def first_backbone_head(head, rel_paths):
    """The dense head `head`, fitted again on the first backbone's part of fused features alone.

    The head trained on the fusion reads features that one fine-tuned network does not make; this one
    starts already trained on what it will see, as fine-tuning needs, with the same settings and seed.
    """
    pooled = store.read(paths.features_file("train"))
    views = fusion.first_block(pooled.views(), pooled.meta)
    groups = np.repeat(duplicates.image_groups(rel_paths, duplicates.read(paths.DUPLICATES)), views.shape[1])
    return evaluation.fit(head, views.reshape(-1, views.shape[-1]), np.repeat(pooled.y, views.shape[1]), groups)[0]


def stopping_data(train, dense):
    """(training images to fit on, (intermediate output, labels) to stop early on).

    The validation split when there is one besides the reported split. Else the training images
    the dense head itself stopped on (whole images, copies together): they were left out of the
    head's fit and are left out of this one, so the stopping images are unseen by both.
    """
    split = catalog.separate_validation_split(s for s in catalog.SPLITS if paths.features_file(s).exists())
    if split:
        stop = store.read(paths.features_file(split), backbone.BLOCK4)
        return slice(None), (stop.X, stop.y)
    groups = duplicates.image_groups(train.paths, duplicates.read(paths.DUPLICATES))
    held = np.isin(groups, dense.stopping_groups_)
    return ~held, (train.X[held], train.y[held])


def taking_images(tuned, name=backbone.DEFAULT):
    """The fine-tuned network as a model of RGB images in 0-255, the backbone's own preprocessing its first layers."""
    images = keras.Input(tuned.input_shape[1:], name="images")
    return keras.Model(images, tuned(backbone.preprocessing_function(name)(images)), name=f"{name}_finetuned")


if __name__ == "__main__":
    main()
