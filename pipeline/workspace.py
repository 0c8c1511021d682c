"""A DVC project of its own, running this checkout's code on other settings: the demo's, each benchmark dataset's.

A workspace holds a copy of the package (so that the code a run used stays beside its results), dvc.yaml,
and a params.yaml made from the project's with some settings changed, as `dvc exp run -S` changes them.
Its outputs are kept, so a second run only redoes what changed.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from dvc.exceptions import InvalidArgumentError
from dvc.utils.hydra import apply_overrides

from pipeline import PipelineError
from pipeline.config import ROW_SECTIONS, load_params
from pipeline.files import write_text

PROJECT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("dvc.yaml", ".dvcignore")


def project_params():
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


def merged_params(data_dir, changes=(), approaches=ROW_SECTIONS, base=None):
    """The project's params (or `base`) on `data_dir`, with `changes` made as `dvc exp run -S` makes them.

    `changes` are Hydra overrides ("heads.logreg_l2.C=1", "~scratch.scratch_cnn", "+heads.x.class_weight=balanced"),
    applied by DVC's own code, so each changes one value and leaves the rest of its section alone. The rows
    of the approaches not chosen are dropped. The result is checked as the stages check params.yaml.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "params.yaml"
        path.write_text(yaml.safe_dump(project_params() if base is None else base, sort_keys=False))
        try:
            apply_overrides(path, list(changes))
        except InvalidArgumentError as exc:  # its own message is "Invalid `--set-param` value"; Hydra's says why
            reason = str(exc.__cause__ or exc).replace("\n", " ")
            raise PipelineError(f"cannot apply -S {' '.join(changes)}: {reason}") from exc
        params = load_params(path)
    params["data"]["dir"] = str(Path(data_dir).resolve())
    for section in ROW_SECTIONS:
        if section not in approaches:
            params[section] = {}
    return params


def prepare(folder, params, shared_cache=None):
    """Make `folder` a DVC project running this checkout's code on `params`; outputs already there are kept.

    `shared_cache`: a folder to hold the per-image feature cache of several workspaces (its entries are
    keyed by content and provenance, so sharing is safe and saves re-extracting the same images).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "pipeline", ignore_errors=True)
    shutil.copytree(PROJECT / "pipeline", folder / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in PROJECT_FILES:
        shutil.copy(PROJECT / name, folder / name)
    write_text(folder / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    if shared_cache is not None and not (folder / "cache").exists():
        Path(shared_cache).mkdir(parents=True, exist_ok=True)
        (folder / "cache").symlink_to(Path(shared_cache).resolve(), target_is_directory=True)
    if not (folder / ".dvc").is_dir():
        subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=folder, check=True)


def repro(folder, log=None):
    """`dvc repro` in `folder` with this interpreter; its output goes to `log` (a path) or to the terminal."""
    # dvc.yaml's commands say `python`: make it this interpreter, venv activated or not.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "dvc", "repro"]
    if log is None:
        result = subprocess.run(command, cwd=folder, env=env)
    else:
        with open(log, "w") as out:
            result = subprocess.run(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise PipelineError(f"dvc repro failed in {folder}" + (f": see {log}" if log else ""))
