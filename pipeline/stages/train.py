"""Stage train@HEAD: cross-validate one head on the training features, refit, score held-out."""
from pipeline import evaluation, features, outputs, paths
from pipeline.config import load_params
from pipeline.heads import make_head
from pipeline.stages import entry_point, run_name


@entry_point
def main(argv):
    params = load_params()
    name = run_name(argv, params, "heads")
    seed = params["evaluate"]["seed"]
    model = make_head(name, params["heads"][name], seed=seed)
    train = features.read(paths.features_file("train"))
    heldout = paths.heldout_features()
    fitted, result, predictions = evaluation.evaluate(
        model, train, heldout and features.read(heldout), params["evaluate"]["folds"], seed,
        tta=params["evaluate"]["tta"],
    )
    bundle = {"model": fitted, "classes": train.classes, "features": train.meta, "tta": result.get("tta", False)}
    metrics = {"type": params["heads"][name]["type"], **result}
    outputs.save(name, bundle, metrics, predictions, getattr(fitted[-1], "history_", None))
    print(outputs.summary(name, metrics))


if __name__ == "__main__":
    main()
