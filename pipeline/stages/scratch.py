"""Stage scratch@NAME: the small CNN trained from scratch on the images, with augmentation."""
import time
from pathlib import Path

import numpy as np

from pipeline import PipelineError, augment, data, evaluation, outputs, paths
from pipeline.config import check_settings, stage_params
from pipeline.features import Features
from pipeline.images import load_images
from pipeline.scratch import ScratchCNN
from pipeline.stages import entry_point, run_name

PARAMS = ("data.dir", "augment", "evaluate", "scratch.{name}")  # what dvc.yaml's scratch stage lists
FIXED = ("augmentation", "random_state")  # from augment: and evaluate: instead


@entry_point
def main(argv):
    name = run_name(argv, "scratch")
    params = stage_params(PARAMS, name)
    settings = dict(params["scratch"][name])
    size = settings.pop("input_size", 150)
    check_settings(f"params.yaml: scratch.{name}", settings, set(ScratchCNN().get_params()) - set(FIXED))
    manifest = data.read_manifest(paths.MANIFEST)
    classes = data.class_names(manifest)
    heldout_split = data.heldout_split(manifest["split"])
    if heldout_split is None:
        raise PipelineError("the scratch CNN is scored on a test or validation split and there is none: "
                            "set data.split.test above 0, or scratch: {} in params.yaml")
    root = Path(params["data"]["dir"])

    def split_images(split):
        rows = manifest[manifest["split"] == split]
        return Features(X=load_images([root / p for p in rows["path"]], size),
                        y=np.array([classes.index(c) for c in rows["label"]]),
                        paths=list(rows["path"]), classes=classes, meta={"split": split})

    train, heldout = split_images("train"), split_images(heldout_split)
    stop_split = data.stopping_split(manifest["split"])
    stop = split_images(stop_split) if stop_split else None
    cnn = ScratchCNN(params["augment"], random_state=params["evaluate"]["seed"], **settings)
    start = time.perf_counter()
    cnn.fit(train.X, train.y, validation=stop and (stop.X, stop.y))
    seconds = time.perf_counter() - start
    tta = params["evaluate"]["tta"]
    proba = cnn.predict_proba(heldout.X)
    if tta:
        proba = (proba + cnn.predict_proba(augment.mirror(heldout.X))) / 2
    scores, predictions = evaluation.outcome(proba, heldout, classes, heldout_split)
    metrics = {"type": "scratch", "approach": "small CNN from scratch", "heldout": scores,
               "fit_seconds": seconds, "epochs": len(cnn.history_["loss"]), "tta": tta}
    bundle = {"model": cnn.model_, "classes": classes,
              "images": {"input_size": size, "preprocess": None, "tta": tta}}
    outputs.save(name, bundle, evaluation.to_builtin(metrics), predictions, cnn.history_)
    print(outputs.summary(name, metrics))


if __name__ == "__main__":
    main()
