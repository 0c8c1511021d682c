"""Stage train@HEAD: cross-validate one head on the training features, refit, score held-out."""
import joblib

from pipeline import PipelineError, evaluation, features, paths
from pipeline.config import load_params
from pipeline.files import atomic_path, write_csv, write_json
from pipeline.heads import make_head
from pipeline.stages import entry_point

HELDOUT_SPLITS = ("test", "validation")  # the first present is the held-out set


@entry_point
def main(argv):
    if len(argv) != 1:
        raise PipelineError("usage: python -m pipeline.stages.train HEAD (a name under heads: in params.yaml)")
    name = argv[0]
    params = load_params()
    if name not in params["heads"]:
        raise PipelineError(f"no head {name!r} in params.yaml; heads there: {', '.join(params['heads'])}")
    seed = params["evaluate"]["seed"]
    model = make_head(name, params["heads"][name], seed=seed)
    train = features.read(paths.features_file("train"))
    heldout = next((features.read(paths.features_file(s)) for s in HELDOUT_SPLITS
                    if paths.features_file(s).exists()), None)
    fitted, result, predictions = evaluation.evaluate(
        model, train, heldout, params["evaluate"]["folds"], seed
    )
    with atomic_path(paths.model_file(name)) as tmp:
        joblib.dump({"model": fitted, "classes": train.classes, "features": train.meta}, tmp)
    write_csv(paths.predictions_file(name), predictions)
    write_json(paths.metrics_file(name), {"type": params["heads"][name]["type"], **result})
    cv, held = result["cv"]["accuracy"], result.get("heldout", {})
    print(f"{name}: CV accuracy {cv['mean']:.3f} ± {cv['std']:.3f}, "
          f"held-out accuracy {held.get('accuracy', float('nan')):.3f}")


if __name__ == "__main__":
    main()
