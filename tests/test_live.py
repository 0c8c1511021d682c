import json
import subprocess
import sys

import pandas as pd
import pytest

from pipeline import PipelineError
from pipeline.modeling import live


@pytest.fixture(autouse=True)
def outside_any_project(tmp_path, monkeypatch):
    """DVCLive looks for a DVC project from the working folder: none here, so it only writes files."""
    monkeypatch.chdir(tmp_path)


def log(path, epochs, dvcyaml=None):
    """What a fit of `epochs` epochs logs: loss falling, val_loss lowest at epoch 1 (from 0)."""
    curves = live.Curves(path, dvcyaml)
    for epoch in range(epochs):
        curves.epoch_end({"loss": 1.0 / (epoch + 1), "accuracy": 0.5 + epoch / 10,
                          "val_loss": abs(epoch - 1) + 0.5, "val_accuracy": 0.6})
    curves.end(kept_epoch=1)


def test_curves_read_back_under_keras_names_with_epochs_from_one(tmp_path):
    log(tmp_path / "live", epochs=3)
    curves = live.read_curves(tmp_path / "live")
    assert sorted(curves.columns) == ["accuracy", "epoch", "loss", "val_accuracy", "val_loss"]
    assert curves["epoch"].tolist() == [1, 2, 3]
    assert curves["loss"].tolist() == [1.0, 0.5, 1 / 3] and curves["val_loss"].tolist() == [1.5, 0.5, 1.5]
    summary = json.loads((tmp_path / "live/metrics.json").read_text())
    assert summary == {"train": {"loss": 0.5, "accuracy": 0.6}, "eval": {"loss": 0.5, "accuracy": 0.6}, "step": 1}


def test_a_run_stopped_between_two_files_shows_only_whole_epochs(tmp_path):
    log(tmp_path / "live", epochs=3)
    loss = tmp_path / "live/plots/metrics/train/loss.tsv"
    loss.write_text("".join(loss.read_text().splitlines(keepends=True)[:-1]))  # its last epoch never written
    assert live.read_curves(tmp_path / "live")["epoch"].tolist() == [1, 2]


def test_no_curves_read_as_none(tmp_path):
    assert live.read_curves(tmp_path / "absent") is None


def test_an_emptied_folder_keeps_no_earlier_curves_and_each_fit_it_opens_starts_afresh(tmp_path):
    log(tmp_path / "live", epochs=2, dvcyaml=tmp_path / "dvc.yaml")
    folder = live.emptied(tmp_path / "live", dvcyaml=tmp_path / "dvc.yaml")
    assert list(tmp_path.iterdir()) == []  # a row that trains no Keras model any more keeps no old curves
    for epochs in (3, 1):  # a longer fit, then a shorter one
        curves = folder.open()
        for epoch in range(epochs):
            curves.epoch_end({"loss": 1.0, "val_loss": 1.0})
        curves.end(kept_epoch=0)
    assert live.read_curves(tmp_path / "live")["epoch"].tolist() == [1]
    assert (tmp_path / "dvc.yaml").exists()


def test_dvclive_can_name_its_files_in_a_dvc_yaml_of_its_own(tmp_path):
    """For train@, which cannot declare curves that only its dense heads have: DVC reads this one instead."""
    import yaml

    assert live.own_dvcyaml("dense") == live.directory("dense").parent / "dvc.yaml"
    for _ in range(2):  # a second fit (after CV folds) names them once, not twice
        log(tmp_path / "live", epochs=2, dvcyaml=tmp_path / "dvc.yaml")
    assert yaml.safe_load((tmp_path / "dvc.yaml").read_text()) == {
        "metrics": ["live/metrics.json"], "plots": [{"live/plots/metrics": {"x": "step"}}]}
    assert pd.read_csv(tmp_path / "live/plots/metrics/eval/loss.tsv", sep="\t")["step"].tolist() == [0, 1]


def test_a_project_without_a_commit_is_told_to_commit(tmp_path):
    """`dvc repro` runs in a new git repository, but DVCLive reads the commit it logs against."""
    subprocess.run(["git", "-c", "init.defaultBranch=main", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    with pytest.raises(PipelineError, match="commit once"):
        live.emptied(tmp_path / "live").open()
