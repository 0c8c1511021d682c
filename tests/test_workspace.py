from pathlib import Path

import pytest
import yaml

from pipeline import PipelineError, workspace


def test_a_datasets_settings_override_the_projects_and_unchosen_approaches_are_dropped(tmp_path):
    base = workspace.project_params()
    overrides = {"backbone": {"input_size": 96}, "heads": {"only": {"type": "logreg"}}}
    params = workspace.merged_params(overrides, tmp_path, approaches=["heads", "scratch"])
    assert params["backbone"]["input_size"] == 96 and params["backbone"]["pooling"] == base["backbone"]["pooling"]
    assert params["heads"] == {"only": {"type": "logreg"}}
    assert params["finetune"] == {} and params["scratch"] == base["scratch"]
    assert Path(params["data"]["dir"]) == tmp_path.resolve()
    assert workspace.project_params() == base  # the project's params.yaml is not modified


def test_settings_that_params_yaml_would_refuse_are_refused_here_too(tmp_path):
    with pytest.raises(PipelineError, match="unknown key backbone.inputsize: did you mean 'input_size'"):
        workspace.merged_params({"backbone": {"inputsize": 96}}, tmp_path)


def test_a_workspace_runs_this_checkouts_code_on_its_params_and_shares_the_feature_cache(tmp_path):
    params = workspace.merged_params({"backbone": {"input_size": 96}}, tmp_path / "images")
    for name in ("a", "b"):
        workspace.prepare(tmp_path / name, params, shared_cache=tmp_path / "cache")
    folder = tmp_path / "a"
    assert yaml.safe_load((folder / "params.yaml").read_text()) == params
    assert (folder / "pipeline" / "workspace.py").read_text() == Path(workspace.__file__).read_text()
    assert (folder / "dvc.yaml").read_text() == (workspace.PROJECT / "dvc.yaml").read_text()
    assert (folder / ".dvc").is_dir()
    (folder / "cache" / "entry").write_text("x")
    assert (tmp_path / "b" / "cache" / "entry").read_text() == "x"
    assert not list(folder.glob("pipeline/**/__pycache__"))


def test_a_failed_repro_says_where_its_log_is(tmp_path):
    workspace.prepare(tmp_path, workspace.merged_params({}, tmp_path / "no-such-images"))
    with pytest.raises(PipelineError, match="dvc repro failed in .*: see .*repro.log"):
        workspace.repro(tmp_path, log=tmp_path / "repro.log")
    assert "no-such-images" in (tmp_path / "repro.log").read_text()
