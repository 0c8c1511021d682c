"""Stage scratch@NAME: the small CNN trained from scratch on the images, with augmentation."""
import time
from pathlib import Path

import numpy as np

from pipeline import PipelineError, paths
from pipeline.cli import entry_point
from pipeline.config import SCHEMA, check, check_settings, stage_params
from pipeline.data import augment, catalog, image_size
from pipeline.data.images import load_images
from pipeline.features import engines
from pipeline.features.store import Features
from pipeline.modeling import evaluation, live, outputs
from pipeline.modeling.saved_model import SavedModel
from pipeline.modeling.scratch import ScratchCNN
from pipeline.quiet_keras import keras
from pipeline.stages import run_name

# What dvc.yaml's scratch stage lists. The input size follows the backbone's unless the row sets its own;
# backbone.precision decides whether training computes in bfloat16.
PARAMS = ("data.dir", "backbone.input_size", "backbone.precision", "augment", "evaluate", "scratch.{name}")
FIXED = ("augmentation", "precision", "random_state")  # from augment:, backbone: and evaluate: instead


@entry_point
def main(argv):
    name = run_name(argv, "scratch")
    params = stage_params(PARAMS, name)
    settings = dict(params["scratch"][name])
    manifest = catalog.read_manifest(paths.MANIFEST)
    root = Path(params["data"]["dir"])
    size = image_size.resolve(settings.pop("input_size", params["backbone"]["input_size"]),
                              catalog.split_files(manifest, "train", root))
    # A row's own `augment:` changes some of the augment section's transforms for this row only.
    augmentation = {**params["augment"], **settings.pop("augment", {})}
    check(augmentation, SCHEMA["augment"], prefix=f"scratch.{name}.augment.")
    check_settings(f"params.yaml: scratch.{name}", settings, set(ScratchCNN().get_params()) - set(FIXED))
    precision = engines.resolve("keras", params["backbone"]["precision"])[1]
    classes = catalog.class_names(manifest)
    heldout_split = catalog.heldout_split(manifest["split"])
    if heldout_split is None:
        raise PipelineError("the scratch CNN is scored on a test or validation split and there is none: "
                            "set data.split.test above 0, or scratch: {} in params.yaml")

    def split_images(split):
        rows = manifest[manifest["split"] == split]
        return Features(X=load_images(catalog.split_files(manifest, split, root), size),
                        y=np.array([classes.index(c) for c in rows["label"]]),
                        paths=list(rows["path"]), classes=classes, meta={"split": split})

    train, heldout = split_images("train"), split_images(heldout_split)
    stop_split = catalog.separate_validation_split(manifest["split"])
    stop = split_images(stop_split) if stop_split else None
    cnn = ScratchCNN(augmentation, precision=precision, random_state=params["evaluate"]["seed"], **settings)
    start = time.perf_counter()
    cnn.fit(train.X, train.y, validation=stop and (stop.X, stop.y), curves=live.emptied(live.directory(name)))
    seconds = time.perf_counter() - start
    tta = params["evaluate"]["tta"]
    # Scored as predict runs it: the saved network, with TTA where set.
    model = SavedModel(without_augmentation(cnn.model_, augmentation), classes, size, tta=tta)
    scores, predictions = evaluation.outcome(model.proba(heldout.X), heldout, classes, heldout_split)
    metrics = {"type": "scratch", "approach": "small CNN from scratch", "heldout": scores,
               "fit_seconds": seconds, "epochs": len(cnn.history_["loss"]), "tta": tta,
               "input_size": size, "precision": precision}
    outputs.save(name, model, evaluation.to_builtin(metrics), predictions)
    print(outputs.summary(name, metrics))


def without_augmentation(cnn, augmentation):
    """The trained CNN without its random augmentation layers, which leave images as they are at inference.

    That is the model predict loads: it holds only Keras's own layers, so loading it needs no augment.RandomAffine.
    """
    random = tuple(type(layer) for layer in augment.model_layers(augmentation, 0))
    kept = [layer for layer in cnn.layers if not isinstance(layer, random)]
    return keras.Sequential([keras.Input(cnn.input_shape[1:]), *kept], name=cnn.name)


if __name__ == "__main__":
    main()
