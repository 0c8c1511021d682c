import pandas as pd
import pytest

from pipeline import PipelineError, benchmark, workspace
from pipeline.benchmark import defaults_against_tuned, detail_table, load_config, summary_line
from pipeline.workspace import PROJECT


def test_a_target_that_is_not_a_number_is_refused_before_anything_runs(tmp_path):
    config = tmp_path / "datasets.yaml"
    config.write_text("produce:\n  target: 0.99 (at most 1 error)\n")
    with pytest.raises(PipelineError, match="produce.target should be an accuracy"):
        load_config(config)


def test_the_detail_table_gives_cv_spread_and_the_fine_tuning_speed_up_where_they_apply():
    rows = pd.DataFrame({
        "row": ["head", "tuned"], "approach": ["bottleneck + logreg", "fine-tuned vgg16 from block5_conv1 + dense"],
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


def test_the_defaults_pass_where_their_chosen_rows_cv_is_within_one_point_of_the_tuned_ones():
    summaries = pd.DataFrame({
        "settings": ["tuned", "defaults", "tuned", "defaults"], "dataset": ["a", "a", "b", "b"],
        "chosen row": ["logreg_l2", "rbf_svm", "dense_l2", "dense_l2"],
        "CV accuracy": ["0.980 ± 0.010", "0.975 ± 0.012", "0.950 ± 0.030", "0.930 ± 0.020"],
        "held-out accuracy": ["0.97", "0.98", "0.92", "0.91"],
    })
    table = defaults_against_tuned(summaries).set_index("dataset")
    assert table.loc["a", "defaults within 1 point"] == "yes" and table.loc["a", "CV gap, points"] == "+0.5"
    assert table.loc["b", "defaults within 1 point"] == "no" and table.loc["b", "CV gap, points"] == "+2.0"
    assert table.loc["a", "defaults: chosen row"] == "rbf_svm" and table.loc["a", "tuned: held-out accuracy"] == "0.97"
    one_setting = pd.concat([summaries, summaries.iloc[:1].assign(dataset="c")])
    assert list(defaults_against_tuned(one_setting)["dataset"]) == ["a", "b"]  # c ran only the tuned settings


def test_every_shipped_benchmark_configuration_is_valid(tmp_path):
    for entry in load_config(PROJECT / "benchmarks/datasets.yaml").values():
        params = workspace.merged_params(tmp_path, base=benchmark.tuned_params(entry))  # checked as params.yaml is
        assert params["heads"] == entry["params"]["heads"]  # the dataset's rows, not the project's


def test_tuned_settings_replace_the_rows_and_update_other_sections_key_by_key():
    shipped = workspace.project_params()
    params = benchmark.tuned_params({"params": {"backbone": {"pooling": "avg"}, "scratch": {}}})
    assert params["backbone"] == {**shipped["backbone"], "pooling": "avg"}
    assert params["scratch"] == {} and params["heads"] == shipped["heads"]


def test_a_setting_changed_on_the_command_line_gets_a_workspace_of_its_own(tmp_path, monkeypatch):
    prepared = {}
    monkeypatch.setattr(benchmark.workspace, "prepare", lambda folder, params, shared_cache: prepared.update(
        folder=folder, params=params))
    monkeypatch.setattr(benchmark.workspace, "repro", lambda folder, log: None)
    monkeypatch.setattr(benchmark.pd, "read_csv", lambda path: pd.DataFrame({"row": ["a"]}))
    entry = {"params": {"backbone": {"pooling": "avg"}}}
    benchmark.run_dataset(tmp_path / "ants", entry, "tuned", ["heads"], tmp_path, ["backbone.input_size=224"])
    assert prepared["folder"] == tmp_path / "ants.backbone.input_size=224"
    assert prepared["params"]["backbone"]["input_size"] == 224 and prepared["params"]["backbone"]["pooling"] == "avg"
    assert entry == {"params": {"backbone": {"pooling": "avg"}}}  # the dataset's entry is left as it was
    benchmark.run_dataset(tmp_path / "ants", entry, "defaults", ["heads", "finetune"], tmp_path,
                          ["augment.copies=3", "heads.logreg_l2.C=1"])
    assert prepared["folder"] == tmp_path / "ants.defaults.augment.copies=3.heads.logreg_l2.C=1"
    assert prepared["params"]["augment"]["copies"] == 3 and prepared["params"]["backbone"]["pooling"] == "flatten"
    shipped = workspace.project_params()["heads"]
    assert prepared["params"]["heads"] == {**shipped, "logreg_l2": {**shipped["logreg_l2"], "C": 1}}  # one value
    assert prepared["params"]["finetune"] == workspace.project_params()["finetune"]
    assert prepared["params"]["scratch"] == {}  # not among the approaches
