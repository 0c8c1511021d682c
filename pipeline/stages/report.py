"""Stage report: compare every head, fine-tuning and scratch run of params.yaml in reports/report.md, and choose one."""
from pipeline import PipelineError, paths, report
from pipeline.config import ROW_SECTIONS, stage_params
from pipeline.stages import entry_point

PARAMS = ("data.dir", *ROW_SECTIONS)  # what dvc.yaml's report stage lists


@entry_point
def main(argv):
    params = stage_params(PARAMS)
    names = [name for section in ROW_SECTIONS for name in params[section]]
    missing = [name for name in names if not paths.metrics_file(name).exists()]
    if missing:
        raise PipelineError(f"no results for {', '.join(missing)}: run `dvc repro` first")
    table = report.write(names, list(params["heads"]), params["data"]["dir"])
    print(report.markdown_table(table))
    print(f"written to {paths.REPORTS / 'report.md'}")


if __name__ == "__main__":
    main()
