"""Stage train@HEAD: cross-validate one head on the training features, refit, score held-out."""
from dataclasses import replace

from pipeline import paths
from pipeline.cli import entry_point
from pipeline.config import stage_params
from pipeline.data import duplicates
from pipeline.features import fusion, store
from pipeline.modeling import evaluation, heads, live, outputs
from pipeline.modeling.feature_pass import FeaturePass
from pipeline.modeling.saved_model import SavedModel
from pipeline.stages import run_name

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
    heldout = store.heldout_file()
    # A dense head's curves (DVCLive): each CV fold's fit starts them afresh and the final fit comes last.
    with live.logging_to(live.directory(name), dvcyaml=live.own_dvcyaml(name)):
        fitted, result, predictions, out_of_fold = evaluation.evaluate(
            model, train, heldout and read(heldout, layer), params["evaluate"]["folds"], seed,
            tta=params["evaluate"]["tta"],
            groups=duplicates.image_groups(train.paths, duplicates.read(paths.DUPLICATES)),  # copies in one fold
        )
    model = SavedModel(fitted, train.classes, train.meta["input_size"], tta=result.get("tta", False),
                       preprocessing=FeaturePass(dict(train.meta), layer))
    # Named by backbone (or fusion); block4 is the intermediate output, a fusion's first backbone's (features.fusion)
    approach = (f"{train.meta['backbone']} bottleneck" if layer == "block5"
                else f"{fusion.parts(train.meta)[0]['backbone']} {layer} features")
    metrics = {"type": spec["type"], "approach": f"{approach} + {spec['type']}", "layer": layer, **result}
    outputs.save(name, model, metrics, predictions, out_of_fold)
    print(outputs.summary(name, metrics))


def read(path, layer):
    """A split's cached arrays of `layer`, one vector per image and view."""
    cached = store.read(path, heads.LAYERS[layer][0])
    return replace(cached, X=heads.vectors(cached.X, layer), augmented=heads.vectors(cached.augmented, layer),
                   flipped=heads.vectors(cached.flipped, layer))


if __name__ == "__main__":
    main()
