"""Stage report: compare every head, fine-tuning and scratch run of params.yaml in reports/report.md, and choose one.

reports/report.html is the same report as one page to open, its figures inside it.
"""
from pipeline import PipelineError, paths
from pipeline.cli import entry_point
from pipeline.config import ROW_SECTIONS, stage_params
from pipeline.modeling import selection_images
from pipeline.report import html_page, markdown

# What dvc.yaml's report stage lists: every section, since the report shows the settings that made it
# (and previews `augment`'s copies).
PARAMS = ("data", "backbone", "augment", "evaluate", *ROW_SECTIONS)


@entry_point
def main(argv):
    params = stage_params(PARAMS)
    names = [name for section in ROW_SECTIONS for name in params[section]]
    missing = [name for name in names if not paths.metrics_file(name).exists()]
    if missing:
        raise PipelineError(f"no results for {', '.join(missing)}: run `dvc repro` first")
    selected = selection_images.selected_paths(params["evaluate"]["selection"], params["evaluate"]["seed"])
    table = markdown.write(names, list(params["heads"]), params["data"]["dir"], settings=params, selected=selected)
    page = html_page.write(paths.REPORTS / "report.md", paths.REPORTS / "report.html",
                           f"Report: {params['data']['dir']}")
    print(markdown.markdown_table(table))
    print(f"written to {paths.REPORTS / 'report.md'}; to open: {page.resolve()}")


if __name__ == "__main__":
    main()
