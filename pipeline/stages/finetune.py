"""Stage finetune@NAME: the backbone's top block fine-tuned with a trained dense head, on cached features."""
from pipeline import PipelineError, paths
from pipeline.cli import entry_point
from pipeline.config import check_settings, stage_params
from pipeline.features import engines
from pipeline.modeling import finetune, live, outputs
from pipeline.stages import run_name

# What dvc.yaml's finetune stage lists; backbone.precision decides whether training computes in bfloat16.
PARAMS = ("data.dir", "backbone.precision", "evaluate", "finetune.{name}")


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
    check_settings(where, settings, set(finetune.FineTuner().get_params()) - set(finetune.FIXED))
    evaluate = params["evaluate"]
    model, metrics, predictions, selection = finetune.fine_tune(
        head_name, settings, params["data"]["dir"], evaluate["seed"], evaluate["tta"],
        curves=live.emptied(live.directory(name)), selection=evaluate["selection"],
        precision=engines.keras_precision(params["backbone"]["precision"]))
    outputs.save(name, model, metrics, predictions, selection=selection)
    print(outputs.summary(name, metrics))
    print(f"a training step costs {metrics['speedup']:.1f}x less per image from the cached intermediate output")


if __name__ == "__main__":
    main()
