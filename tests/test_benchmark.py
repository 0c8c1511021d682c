from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline import PipelineError
from pipeline.benchmark import PROJECT, detail_table, load_config, summary_line, workspace_params
from pipeline.config import SCHEMA, check


def test_a_datasets_settings_override_the_projects_and_unchosen_approaches_are_dropped(tmp_path):
    base = yaml.safe_load((PROJECT / "params.yaml").read_text())
    overrides = {"backbone": {"input_size": 150}, "heads": {"only": {"type": "logreg"}}}
    params = workspace_params(base, overrides, tmp_path, approaches=["heads", "scratch"])
    assert params["backbone"]["input_size"] == 150 and params["backbone"]["pooling"] == base["backbone"]["pooling"]
    assert params["heads"] == {"only": {"type": "logreg"}}
    assert params["finetune"] == {} and params["scratch"] == base["scratch"]
    assert Path(params["data"]["dir"]).is_absolute()
    assert base["heads"] != params["heads"]  # the project's params are not modified
    check(params, SCHEMA, prefix="")


def test_every_shipped_benchmark_configuration_is_valid(tmp_path):
    base = yaml.safe_load((PROJECT / "params.yaml").read_text())
    config = load_config(PROJECT / "benchmarks/datasets.yaml")
    for entry in config.values():
        check(workspace_params(base, entry["params"], tmp_path, ["heads", "finetune", "scratch"]), SCHEMA, "")


def test_a_target_that_is_not_a_number_is_refused_before_anything_runs(tmp_path):
    config = tmp_path / "datasets.yaml"
    config.write_text("produce:\n  target: 0.99 (at most 1 error)\n")
    with pytest.raises(PipelineError, match="produce.target should be an accuracy"):
        load_config(config)


def test_the_detail_table_gives_cv_spread_and_the_fine_tuning_speed_up_where_they_apply():
    rows = pd.DataFrame({
        "row": ["head", "tuned"], "approach": ["bottleneck + logreg", "fine-tuned block 5 + dense"],
        "accuracy": [0.95, 0.9], "ci_low": [0.9, 0.85], "ci_high": [0.99, 0.95], "errors": [5, 10],
        "mcnemar_p": [float("nan"), 0.03], "seconds": [2.0, 90.0], "cv_accuracy": [0.94, float("nan")],
        "cv_std": [0.01, float("nan")], "speedup": [float("nan"), 4.46], "chosen": [True, False],
    })
    lines = detail_table(rows).splitlines()
    assert "| head " in lines[2] and "0.940 ± 0.010" in lines[2] and "chosen" in lines[2]
    assert "| tuned " in lines[3] and "4.5x" in lines[3] and "n/a" in lines[3] and "0.03" in lines[3]


def test_the_headline_is_the_chosen_row_not_the_best_held_out_one():
    rows = pd.DataFrame({
        "row": ["chosen_by_cv", "lucky"], "split": "test", "images": 100, "accuracy": [0.95, 0.97],
        "ci_low": [0.9, 0.92], "ci_high": [0.98, 0.99], "errors": [5, 3], "cv_accuracy": [0.96, 0.93],
        "cv_std": [0.01, 0.02], "chosen": [True, False], "extraction_seconds": 10.0, "seconds": [1.0, 2.0],
    })
    line = summary_line("cats", rows, {"target": 0.96})
    assert line["chosen row"] == "chosen_by_cv" and line["held-out accuracy"] == "0.950" and line["met"] == "no"
    assert line["best held-out (not chosen by it)"] == "0.970"
