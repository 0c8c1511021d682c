from pathlib import Path

import yaml

from pipeline.benchmark import PROJECT, workspace_params
from pipeline.config import check, SCHEMA


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
    config = yaml.safe_load((PROJECT / "benchmarks/datasets.yaml").read_text())
    for entry in config.values():
        check(workspace_params(base, entry["params"], tmp_path, ["heads", "finetune", "scratch"]), SCHEMA, "")
