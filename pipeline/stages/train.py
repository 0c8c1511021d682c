"""Stage train@HEAD: cross-validate one head on the training features, refit, score held-out."""
from pipeline import paths
from pipeline.cli import entry_point
from pipeline.config import stage_params
from pipeline.data import duplicates
from pipeline.features import fusion, store
from pipeline.modeling import evaluation, heads, live, outputs
from pipeline.modeling.feature_pass import FeaturePass
from pipeline.modeling.saved_model import SavedModel
from pipeline.stages import run_name

# What dvc.yaml's train stage lists: not evaluate.selection, which changes only the rows without CV and the report.
PARAMS = ("evaluate.folds", "evaluate.seed", "evaluate.tta", "heads.{name}")


@entry_point
def main(argv):
    name = run_name(argv, "heads")
    params = stage_params(PARAMS, name)
    seed = params["evaluate"]["seed"]
    spec = params["heads"][name]
    model = heads.make_head(name, spec, seed=seed)
    layer = heads.layer_of(spec)
    train_file = paths.features_file("train")
    train = heads.read_vectors(train_file, layer)
    heldout = store.heldout_file()
    fitted, result, predictions, out_of_fold = evaluation.evaluate(
        model, train, heldout and heads.read_vectors(heldout, layer), params["evaluate"]["folds"], seed,
        tta=params["evaluate"]["tta"],
        groups=duplicates.image_groups(train.paths, duplicates.read(paths.DUPLICATES)),  # copies in one fold
        curves=live.emptied(live.directory(name), dvcyaml=live.own_dvcyaml(name)),  # a dense head's (DVCLive)
        keep_rows=False,  # the rows are not read again: the final fit scales them where they are
    )
    model = SavedModel(fitted, train.classes, train.meta["input_size"], tta=result.get("tta", False),
                       preprocessing=FeaturePass(dict(train.meta), layer, store.read_networks(train_file)))
    # Named by backbone (or fusion); the intermediate output is a fusion's first backbone's (features.fusion)
    approach = (f"{train.meta['backbone']} bottleneck" if layer == heads.DEFAULT_LAYER
                else f"{fusion.parts(train.meta)[0]['backbone']} {layer} features")
    metrics = {"type": spec["type"], "approach": f"{approach} + {spec['type']}", "layer": layer, **result}
    outputs.save(name, model, metrics, predictions, out_of_fold)
    print(outputs.summary(name, metrics))


if __name__ == "__main__":
    main()
