"""Stage scratch@NAME: the small CNN trained from scratch on the images, with augmentation."""
from pipeline import paths
from pipeline.cli import entry_point
from pipeline.config import SCHEMA, check, check_settings, stage_params
from pipeline.data import catalog, image_size
from pipeline.features import engines
from pipeline.modeling import live, outputs, scratch
from pipeline.stages import run_name

# What dvc.yaml's scratch stage lists. The input size follows the backbone's unless the row sets its own;
# backbone.precision decides whether training computes in bfloat16.
PARAMS = ("data.dir", "backbone.input_size", "backbone.precision", "augment", "evaluate", "scratch.{name}")


@entry_point
def main(argv):
    name = run_name(argv, "scratch")
    params = stage_params(PARAMS, name)
    settings = dict(params["scratch"][name])
    manifest = catalog.read_manifest(paths.MANIFEST)
    data_dir = params["data"]["dir"]
    size = image_size.resolve(settings.pop("input_size", params["backbone"]["input_size"]),
                              catalog.split_files(manifest, "train", data_dir))
    # A row's own `augment:` changes some of the augment section's transforms for this row only.
    augmentation = {**params["augment"], **settings.pop("augment", {})}
    check(augmentation, SCHEMA["augment"], prefix=f"scratch.{name}.augment.")
    known = set(scratch.ScratchCNN().get_params()) - set(scratch.FIXED)
    check_settings(f"params.yaml: scratch.{name}", settings, known)
    precision = engines.keras_precision(params["backbone"]["precision"])
    cnn = scratch.ScratchCNN(augmentation, precision=precision, random_state=params["evaluate"]["seed"], **settings)
    evaluate = params["evaluate"]
    model, metrics, predictions, selection = scratch.train_and_score(
        cnn, manifest, data_dir, size, evaluate["tta"], curves=live.emptied(live.directory(name)),
        selection=evaluate["selection"], seed=evaluate["seed"])
    outputs.save(name, model, metrics, predictions, selection=selection)
    print(outputs.summary(name, metrics))


if __name__ == "__main__":
    main()
