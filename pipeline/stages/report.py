"""Stage report: compare every head, fine-tuning and scratch run of params.yaml in reports/report.md."""
from pipeline import PipelineError, paths, report
from pipeline.config import ROW_SECTIONS, load_params
from pipeline.stages import entry_point


@entry_point
def main(argv):
    params = load_params()
    names = [name for section in ROW_SECTIONS for name in params[section]]
    missing = [name for name in names if not paths.metrics_file(name).exists()]
    if missing:
        raise PipelineError(f"no results for {', '.join(missing)}: run `dvc repro` first")
    table = report.write(names, params["data"]["dir"])
    print(report.markdown_table(table))
    print(f"written to {paths.REPORTS / 'report.md'}")


if __name__ == "__main__":
    main()
