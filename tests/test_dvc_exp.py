"""`dvc exp run -S` as the README teaches it, in a git copy of the project on a few synthetic images.

Random VGG16 weights and tiny sizes: these check which stages a change runs and what params.yaml then
holds, not accuracy.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import make_tree
from tests.test_stages import tiny_params

PROJECT = Path(__file__).resolve().parents[1]


def dvc(project, *args, check=True):
    # dvc.yaml's commands say `python`: make it this interpreter, and let the copy import its own package.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(project)}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True,
                            text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def stages_run(result):
    return {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage '")}


def params(project):
    return yaml.safe_load((project / "params.yaml").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory, random_weights):
    """A committed project, never run: two heads and a scratch CNN; then `dvc exp run -S '~scratch.scratch_cnn'`."""
    root = tmp_path_factory.mktemp("exp")
    settings = tiny_params(make_tree(root / "images", splits=("train", "test")), random_weights)
    settings["heads"] = {"logreg": {"type": "logreg", "C": 1.0},
                         "logreg_intermediate": {"type": "logreg", "layer": "intermediate"}}
    settings["finetune"] = {}
    settings["scratch"] = {"scratch_cnn": {**settings["scratch"]["scratch_cnn"], "augment": {"zoom": 0.2}}}
    project = root / "project"
    shutil.copytree(PROJECT / "pipeline", project / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(PROJECT / name, project / name)
    (project / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    for command in (["init", "-q"], ["config", "user.name", "test"], ["config", "user.email", "test@example.com"]):
        subprocess.run(["git", *command], cwd=project, check=True)
    dvc(project, "init", "-q")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "the project"], cwd=project, check=True)
    return project, dvc(project, "exp", "run", "-S", "~scratch.scratch_cnn")


def test_a_row_deleted_with_tilde_is_switched_off(project):
    project, first = project
    assert {"prepare", "features", "train@logreg", "train@logreg_intermediate", "report"} == stages_run(first)
    assert params(project)["scratch"] == {}
    assert not (project / "models/scratch_cnn.model").exists()
    assert set(pd.read_csv(project / "reports/summary.csv")["row"]) == {"logreg", "logreg_intermediate", "ensemble"}


def test_a_changed_head_value_reruns_that_head_alone(project):
    project, _ = project
    before = params(project)
    result = dvc(project, "exp", "run", "-S", "heads.logreg.C=0.1")
    assert stages_run(result) == {"train@logreg", "report"}
    after = params(project)
    assert after["heads"]["logreg"] == {"type": "logreg", "C": 0.1}
    assert {**after, "heads": None} == {**before, "heads": None}
    assert after["heads"]["logreg_intermediate"] == before["heads"]["logreg_intermediate"]


def test_a_key_not_yet_in_params_yaml_is_added_with_plus(project):
    project, _ = project
    refused = dvc(project, "exp", "run", "-S", "heads.logreg_intermediate.class_weight=balanced", check=False)
    assert refused.returncode != 0
    assert "To append to your config use +heads.logreg_intermediate.class_weight=balanced" in refused.stderr
    result = dvc(project, "exp", "run", "-S", "+heads.logreg_intermediate.class_weight=balanced")
    assert stages_run(result) == {"train@logreg_intermediate", "report"}
    assert params(project)["heads"]["logreg_intermediate"] == {"type": "logreg", "layer": "intermediate",
                                                               "class_weight": "balanced"}


def test_a_new_selection_fraction_reruns_the_report_and_the_rows_without_cv_but_no_head(project):
    project, _ = project
    result = dvc(project, "exp", "run", "-S", "evaluate.selection=0.4")
    assert stages_run(result) == {"report"}  # the scratch CNN is switched off here, and there is no fine-tuning
    summary = pd.read_csv(project / "reports/summary.csv")
    assert (summary["selection_images"] > 0).all() and summary["selection_accuracy"].notna().all()
