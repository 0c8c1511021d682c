from pathlib import Path

import pytest
import yaml

from pipeline import PipelineError
from pipeline.benchmark import PROJECT, load_config, workspace_params
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
