import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import paths

PROJECT = Path(__file__).resolve().parents[1]
OUTPUTS = [value for value in vars(paths).values() if isinstance(value, Path)]  # every place a stage writes
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]


def test_every_output_is_relative_to_the_project_folder():
    assert OUTPUTS and not any(path.is_absolute() for path in OUTPUTS)


def test_a_rows_files_are_named_after_it():
    assert paths.model_file("logreg") == Path("models/logreg.model")
    assert paths.metrics_file("logreg") == Path("results/logreg/metrics.json")
    assert paths.predictions_file("logreg") == Path("results/logreg/predictions.csv")
    assert paths.out_of_fold_file("logreg") == Path("results/logreg/out_of_fold.csv")
    assert paths.features_file("validation") == Path("features/validation.h5")


def write_every_output(root):
    """A file at (or inside) every output path, a few row files, and `make demo`'s project, as runs leave them."""
    written = [paths.model_file("new_head"), paths.metrics_file("new_head"), paths.out_of_fold_file("logreg"),
               paths.FEATURE_CACHE / "ab" / "abcd.npz", paths.features_file("train"),
               Path("demo") / paths.metrics_file("logreg"), Path("demo/data/digits/0/0000.png")]
    for path in OUTPUTS:
        written.append(path if path.suffix else path / "something")
    for path in written:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("generated\n")
    return written


def make(target, cwd):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent)}  # never the repository around tmp_path
    return subprocess.run(["make", target], cwd=cwd, env=env, check=True, capture_output=True, text=True)


def user_images(root):
    images = [root / "data/digits/0/0000.png", root / "data/mine/cats/a.jpg"]
    for image in images:
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"an image")
    return images


def test_make_clean_removes_the_outputs_but_not_what_git_tracks_nor_the_images(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    for name in ("Makefile", ".gitignore"):
        shutil.copy(PROJECT / name, root / name)
    # What the repository commits, as the demo does: a row's metrics and predictions, and the .gitignore
    # that leaves its out-of-fold probabilities to DVC.
    tracked = {paths.metrics_file("logreg"): '{"cv": 0.9}\n', paths.predictions_file("logreg"): "path\n",
               paths.RESULTS / "logreg/.gitignore": "/out_of_fold.csv\n", Path("dvc.lock"): "schema: '2.0'\n"}
    for path, text in tracked.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "demo results"], cwd=root, check=True)
    written = write_every_output(root)
    images = user_images(root)

    make("clean", root)

    assert not [path for path in written if (root / path).exists() and path not in tracked]
    for path in (paths.FEATURES, paths.FEATURE_CACHE.parent, paths.MODELS, paths.REPORTS, Path("demo")):
        assert not (root / path).exists()
    assert all((root / path).read_text() == text for path, text in tracked.items())
    assert all(image.read_bytes() == b"an image" for image in images)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, check=True, capture_output=True, text=True)
    assert status.stdout == ""  # the working tree is as committed


def test_make_clean_outside_git_removes_every_output_but_not_the_images(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT / "Makefile", root / "Makefile")
    write_every_output(root)
    images = user_images(root)

    make("clean", root)

    assert not [path for path in [*OUTPUTS, Path("demo")] if (root / path).exists()]
    assert sorted(p for p in root.rglob("*") if p.is_file()) == sorted([root / "Makefile", *images])
