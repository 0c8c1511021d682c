"""Stage report: compare the heads listed in params.yaml in reports/report.md."""
from pipeline import PipelineError, paths, report
from pipeline.config import load_params
from pipeline.stages import entry_point


@entry_point
def main(argv):
    params = load_params()
    missing = [name for name in params["heads"] if not paths.metrics_file(name).exists()]
    if missing:
        raise PipelineError(f"no results for {', '.join(missing)}: run `dvc repro` first")
    table = report.write(list(params["heads"]), params["data"]["dir"])
    print(table.to_string(index=False))
    print(f"written to {paths.REPORTS / 'report.md'}")


if __name__ == "__main__":
    main()
