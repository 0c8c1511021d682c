from pathlib import Path

import pytest
import yaml

from pipeline import PipelineError, config
from pipeline.config import load_params, stage_params

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
VALID = yaml.safe_load(PARAMS.read_text())


def write(tmp_path, params):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def with_change(section, key, value):
    params = yaml.safe_load(yaml.safe_dump(VALID))
    params[section][key] = value
    return params


def test_the_shipped_params_load():
    assert load_params(PARAMS)["backbone"]["pooling"] == "flatten"


def test_no_params_yaml_says_where_to_run_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=r"^params\.yaml not found: run from the project folder, where params"):
        stage_params(("data.dir",))


def test_a_typo_names_the_key_and_suggests_the_right_one(tmp_path):
    params = yaml.safe_load(yaml.safe_dump(VALID))
    params["data"]["spilt"] = params["data"].pop("split")
    with pytest.raises(PipelineError, match=r"unknown key data\.spilt: did you mean 'split'"):
        load_params(write(tmp_path, params))


@pytest.mark.parametrize("section, key, value, message", [
    ("backbone", "input_size", "big", r"backbone\.input_size should be a whole number of pixels, or auto, got 'big'"),
    ("backbone", "input_size", True, r"backbone\.input_size should be a whole number of pixels, or auto"),
    ("evaluate", "folds", 2.5, r"evaluate\.folds should be a whole number"),
    ("backbone", "pooling", "mean", r"backbone\.pooling is 'mean'; use one of auto, flatten, avg, max"),
    ("augment", "seed", -1, r"augment\.seed is -1; seeds are whole numbers from 0 up"),
    ("data", "duplicates", {"max_distance": 4, "heldout": "ignore"},
     r"data\.duplicates\.heldout is 'ignore'; use one of drop, keep"),
    ("evaluate", "selection", 1, r"evaluate\.selection is 1; use a fraction from 0 up to below 1"),
    ("evaluate", "selection", -0.1, r"evaluate\.selection is -0\.1; use a fraction from 0 up to below 1"),
])
def test_wrong_values_are_named(tmp_path, section, key, value, message):
    with pytest.raises(PipelineError, match=message):
        load_params(write(tmp_path, with_change(section, key, value)))


@pytest.mark.parametrize("size", ["auto", 96])
def test_the_input_size_is_pixels_or_auto(tmp_path, size):
    assert load_params(write(tmp_path, with_change("backbone", "input_size", size)))["backbone"]["input_size"] == size


@pytest.mark.parametrize("old, new", [("block4", "intermediate"), ("block5", "pooled")])
def test_a_layer_under_its_old_vgg16_name_says_the_new_one(tmp_path, old, new):
    params = yaml.safe_load(yaml.safe_dump(VALID))
    params["heads"]["mine"] = {"type": "logreg", "layer": old}
    with pytest.raises(PipelineError, match=rf"^params\.yaml: heads\.mine\.layer '{old}' is now called '{new}': "
                                            rf"write layer: {new}$") as error:
        load_params(write(tmp_path, params))
    assert "\n" not in str(error.value)
    params["heads"]["mine"]["layer"] = new
    assert load_params(write(tmp_path, params))["heads"]["mine"]["layer"] == new


def test_a_missing_key_is_named(tmp_path):
    params = yaml.safe_load(yaml.safe_dump(VALID))
    del params["evaluate"]["seed"]
    with pytest.raises(PipelineError, match=r"evaluate\.seed is missing"):
        load_params(write(tmp_path, params))


def test_broken_yaml_is_reported_on_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(PipelineError, match="not valid YAML") as error:
        load_params(path)
    assert "\n" not in str(error.value)


def test_a_stage_sees_only_the_settings_it_declares(tmp_path):
    path = write(tmp_path, VALID)
    narrowed = stage_params(("evaluate.folds", "heads.{name}"), name="logreg", path=path)
    assert narrowed == {"evaluate": {"folds": VALID["evaluate"]["folds"]},
                        "heads": {"logreg": VALID["heads"]["logreg"]}}
    with pytest.raises(PipelineError, match=r"params.yaml has no 'xgb' under heads; there: dense_l2, linear_svm"):
        stage_params(("heads.{name}",), name="xgb", path=path)


def with_rows(**sections):
    params = yaml.safe_load(yaml.safe_dump(VALID))
    for section, rows in sections.items():
        params[section].update(rows)
    return params


@pytest.mark.parametrize("rows, message", [
    ({"heads": {"ensemble": {"type": "logreg"}}},
     r"^params\.yaml: heads\.ensemble: 'ensemble' is the report's row averaging the heads; rename this row$"),
    ({"scratch": {"logreg": {"epochs": 2}}},
     r"^params\.yaml: scratch\.logreg: heads\.logreg has this name too; rename one of them$"),
    ({"finetune": {"dense_l2": {"head": "dense_l2"}}},
     r"^params\.yaml: finetune\.dense_l2: heads\.dense_l2 has this name too"),
    ({"heads": {"logreg": None}},
     r"^params\.yaml: heads\.logreg should be a mapping of settings, got None; to switch the row off, delete it "
     r"\(dvc exp run -S '~heads\.logreg'\)$"),
])
def test_a_row_name_that_two_rows_would_share_is_named(tmp_path, rows, message):
    with pytest.raises(PipelineError, match=message) as error:
        load_params(write(tmp_path, with_rows(**rows)))
    assert "\n" not in str(error.value)


def test_the_reserved_name_is_the_reports_ensemble_row():
    from pipeline.report import selection
    assert config.ENSEMBLE == selection.ENSEMBLE


def test_fine_tuning_a_head_that_was_switched_off_says_to_switch_it_off_too(tmp_path):
    params = yaml.safe_load(yaml.safe_dump(VALID))
    del params["heads"]["dense_l2"]
    with pytest.raises(PipelineError, match=r"finetune\.finetune_top\.head is 'dense_l2', which is not under "
                                            r"heads; .* \(-S '~finetune\.finetune_top'\)$"):
        load_params(write(tmp_path, params))
    del params["finetune"]["finetune_top"]
    assert load_params(write(tmp_path, params))["finetune"] == {}
