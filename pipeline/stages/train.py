"""Stage train@HEAD: cross-validate one head on the training features, refit, score held-out."""
from dataclasses import replace

from pipeline import duplicates, evaluation, features, heads, outputs, paths
from pipeline.config import stage_params
from pipeline.stages import entry_point, run_name

PARAMS = ("evaluate", "heads.{name}")  # what dvc.yaml's train stage lists


@entry_point
def main(argv):
    name = run_name(argv, "heads")
    params = stage_params(PARAMS, name)
    seed = params["evaluate"]["seed"]
    spec = params["heads"][name]
    model = heads.make_head(name, spec, seed=seed)
    layer = heads.layer_of(spec)
    train = read(paths.features_file("train"), layer)
    heldout = paths.heldout_features()
    fitted, result, predictions, out_of_fold = evaluation.evaluate(
        model, train, heldout and read(heldout, layer), params["evaluate"]["folds"], seed,
        tta=params["evaluate"]["tta"],
        groups=duplicates.image_groups(train.paths, duplicates.read(paths.DUPLICATES)),  # copies in one fold
    )
    bundle = {"model": fitted, "classes": train.classes, "features": train.meta, "layer": layer,
              "tta": result.get("tta", False)}
    approach = "bottleneck" if layer == "block5" else f"{layer} features"
    metrics = {"type": spec["type"], "approach": f"{approach} + {spec['type']}", "layer": layer, **result}
    outputs.save(name, bundle, metrics, predictions, getattr(fitted[-1], "history_", None), out_of_fold)
    print(outputs.summary(name, metrics))


def read(path, layer):
    """A split's cached arrays of `layer`, one vector per image and view."""
    cached = features.read(path, heads.LAYERS[layer][0])
    return replace(cached, X=heads.vectors(cached.X, layer), augmented=heads.vectors(cached.augmented, layer),
                   flipped=heads.vectors(cached.flipped, layer))


if __name__ == "__main__":
    main()
