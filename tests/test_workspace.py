from pathlib import Path

import pytest
import yaml

from pipeline import PipelineError, workspace


def test_a_change_sets_one_value_as_dvc_exp_run_does_and_unchosen_approaches_are_dropped(tmp_path):
    base = workspace.project_params()
    params = workspace.merged_params(tmp_path, ["heads.logreg_l2.C=1", "backbone.input_size=96"],
                                     approaches=["heads", "scratch"])
    assert params["heads"]["logreg_l2"] == {**base["heads"]["logreg_l2"], "C": 1}
    assert {name: row for name, row in params["heads"].items() if name != "logreg_l2"} == {
        name: row for name, row in base["heads"].items() if name != "logreg_l2"}  # every other head as it was
    assert params["backbone"] == {**base["backbone"], "input_size": 96}
    assert params["finetune"] == {} and params["scratch"] == base["scratch"]
    assert Path(params["data"]["dir"]) == tmp_path.resolve()
    assert workspace.project_params() == base  # the project's params.yaml is not modified


def test_a_row_is_deleted_with_tilde_and_a_new_key_added_with_plus(tmp_path):
    base = workspace.project_params()
    params = workspace.merged_params(tmp_path, ["~scratch.scratch_cnn", "+heads.rbf_svm.class_weight=balanced",
                                                "+heads.logreg_c01={type: logreg, C: 0.1}"])
    assert params["scratch"] == {}
    assert params["heads"]["rbf_svm"] == {**base["heads"]["rbf_svm"], "class_weight": "balanced"}
    assert params["heads"]["logreg_c01"] == {"type": "logreg", "C": 0.1}


def test_a_base_takes_the_projects_place(tmp_path):
    base = workspace.project_params()
    base["finetune"] = {}
    assert workspace.merged_params(tmp_path, ["evaluate.folds=3"], base=base)["finetune"] == {}


@pytest.mark.parametrize("pooling", ["auto", "avg"])
def test_one_pooling_for_every_backbone_is_a_plain_value_for_dvc_exp_run(tmp_path, pooling):
    assert workspace.merged_params(tmp_path, [f"backbone.pooling={pooling}"])["backbone"]["pooling"] == pooling


@pytest.mark.parametrize("changes, message", [
    # one pooling name for all the backbones (auto: each its own); no mapping per backbone
    (["backbone.pooling={vgg16: flatten, mobilenetv2: avg}"], r"backbone\.pooling should be a text, got \{"),
    (["backbone.pooling=mean"], r"backbone\.pooling is 'mean'; use one of auto, flatten, avg, max"),
    (["heads.logreg_l2.CC=1"], r"^cannot apply -S heads\.logreg_l2\.CC=1: Could not override 'heads\.logreg_l2\.CC'\. "
                               r"To append to your config use \+heads\.logreg_l2\.CC=1"),
    (["backbone.inputsize=96"], r"use \+backbone\.inputsize=96"),  # not in params.yaml: Hydra says so
    (["+backbone.inputsize=96"], "unknown key backbone.inputsize: did you mean 'input_size'"),  # added, then checked
    (["heads.logreg_l2=null"], r"heads\.logreg_l2 should be a mapping of settings, got None; to switch the row off"),
])
def test_settings_that_dvc_or_params_yaml_would_refuse_are_refused_here_too(tmp_path, changes, message):
    with pytest.raises(PipelineError, match=message) as error:
        workspace.merged_params(tmp_path, changes)
    assert "\n" not in str(error.value)


def test_a_workspace_runs_this_checkouts_code_on_its_params_and_shares_the_feature_cache(tmp_path):
    params = workspace.merged_params(tmp_path / "images", ["backbone.input_size=96"])
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
    workspace.prepare(tmp_path, workspace.merged_params(tmp_path / "no-such-images"))
    with pytest.raises(PipelineError, match="dvc repro failed in .*: see .*repro.log"):
        workspace.repro(tmp_path, log=tmp_path / "repro.log")
    assert "no-such-images" in (tmp_path / "repro.log").read_text()
