"""The pipeline as a user drives it: dvc repro on a few real images with the real VGG16 weights."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image, ImageDraw, ImageFont

from pipeline.features import store

PROJECT = Path(__file__).resolve().parents[1]
PER_CLASS = {"train": 20, "test": 8}


def run(args, cwd, check=True):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def placeholder(path):
    """What a scraper saves when the photo is gone: grey words on white."""
    image = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(image).text((40, 130), "IMAGE NOT FOUND", fill=(90, 90, 90),
                               font=ImageFont.load_default(size=24))
    image.save(path)


@pytest.fixture
def project(tmp_path, shared_datasets, imagenet_weights):
    """A copy of the project (its own git and DVC) over a few cats-dogs-small images."""
    data = tmp_path / "images"
    for split, count in PER_CLASS.items():
        for label in ("cats", "dogs"):
            source = sorted((shared_datasets / "cats-dogs-small" / split / label).iterdir())[:count]
            (data / split / label).mkdir(parents=True)
            for file in source:
                shutil.copy(file, data / split / label / file.name)
    (data / "train/cats/broken.jpg").write_bytes(source[0].read_bytes()[:500])
    placeholder(data / "train/dogs/image_not_found.gif")
    dogs = sorted((shared_datasets / "cats-dogs-small/train/dogs").iterdir())
    shutil.copy(dogs[PER_CLASS["train"]], data / "train/cats/mislabelled_dog.jpg")  # a dog filed under cats
    # Held-out copies of training images: one byte for byte, one resized and re-encoded.
    shutil.copy(data / "train/dogs" / dogs[0].name, data / "test/dogs/copy_of_a_training_dog.jpg")
    with Image.open(sorted((data / "train/cats").glob("cat*"))[0]) as cat:
        cat.resize((150, 150)).save(data / "test/cats/smaller_training_cat.jpg", quality=80)
    (data / "train/dogs/notes.txt").write_text("not an image")

    root = tmp_path / "project"
    shutil.copytree(PROJECT / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(PROJECT / name, root / name)
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"]["dir"] = str(data)
    params["backbone"]["input_size"] = 150
    # The test's own augmentation, not the shipped defaults': its expectations (such as how many labels CV doubts)
    # depend on the features.
    params["augment"].update(copies=1, rotation=0.05, width_shift=0.1, height_shift=0.1, shear=0.0, zoom=0.1,
                             horizontal_flip=True)
    params["evaluate"].update(folds=3, tta=True)
    params["heads"] = {"logreg": {"type": "logreg", "C": 1.0},
                       "logreg_intermediate": {"type": "logreg", "layer": "intermediate"},
                       "dense": {"type": "dense", "scale": "l2", "epochs": 30, "patience": 5}}
    params["finetune"] = {"finetune_top": {"head": "dense", "epochs": 2, "patience": 2, "batch_size": 8}}
    params["scratch"] = {"scratch_cnn": {"input_size": 64, "epochs": 2, "patience": 2, "batch_size": 8}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "init", "-q"], root)
    # A first commit, as `dvc exp run` needs, and DVCLive too, which reads the commit it logs against
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "project"], root)
    return root


def test_repro_report_rerun_and_predict(project):
    first = run([sys.executable, "-m", "dvc", "repro"], project)
    assert "Running stage 'features'" in first.stdout

    logreg = yaml.safe_load((project / "results/logreg/metrics.json").read_text())
    assert logreg["heldout"]["images"] == 16  # the two held-out copies of training images are left out
    assert logreg["heldout"]["accuracy"] >= 0.8  # chance is 0.5
    assert logreg["cv"]["accuracy"]["mean"] >= 0.7

    report = (project / "reports/report.md").read_text()
    assert "train/cats/broken.jpg" in report and "train/dogs/notes.txt" in report
    doubted = pd.read_csv(project / "reports/doubted_labels.csv")
    # The planted dog is the most confidently doubted of the few images doubted (42 in training).
    assert doubted.sort_values("probability")["path"].iloc[-1] == "train/cats/mislabelled_dog.jpg"
    assert len(doubted) <= 7  # a sixth of the training images: which few, the dense head's stopping split moves
    assert (project / "reports/doubted_labels.png").stat().st_size > 0
    assert pd.read_csv(project / "reports/atypical.csv")["path"].iloc[0] == "train/dogs/image_not_found.gif"
    copies = pd.read_csv(project / "data/duplicates.csv")
    assert set(copies.loc[copies["left_out"], "path"]) == {"test/dogs/copy_of_a_training_dog.jpg",
                                                           "test/cats/smaller_training_cat.jpg"}
    assert "copies of training images left out of every held-out score: 2 " in report
    assert "`test/cats/smaller_training_cat.jpg` (test, near, left out)" in report
    assert "CV scores each image once, without it" in report  # CV and held-out columns say how they differ
    summary = pd.read_csv(project / "reports/summary.csv")
    assert set(summary["row"]) == {"logreg", "logreg_intermediate", "dense", "ensemble", "finetune_top", "scratch_cnn"}
    assert (summary["images"] == 16).all() and summary["mcnemar_p"].isna().sum() == 1
    chosen = summary.loc[summary["chosen"]].iloc[0]
    assert summary["chosen"].sum() == 1 and summary["selection_accuracy"].notna().all()
    cv_winner = summary.loc[summary["cv_accuracy"].idxmax()]
    if pd.isna(chosen["cv_accuracy"]):  # a row without CV, chosen for more selection images right than the CV winner
        assert chosen["selection_accuracy"] > cv_winner["selection_accuracy"]
    else:
        assert chosen["cv_accuracy"] == cv_winner["cv_accuracy"]
    for figure in ("confusion_dense", "curve_dense", "curve_finetune_top", "curve_scratch_cnn"):
        assert (project / f"reports/{figure}.png").stat().st_size > 0
    # Fine-tuning from cached intermediate output costs much less per step than running all of VGG16.
    tuned = yaml.safe_load((project / "results/finetune_top/metrics.json").read_text())
    assert tuned["speedup"] > 2 and tuned["training_views"] == 2 and tuned["tta"] is True

    # A head's hyperparameter changes: that head refits, nothing else runs again.
    features_written = (project / "features/train.h5").stat().st_mtime_ns
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["heads"]["logreg"]["C"] = 0.1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = run([sys.executable, "-m", "dvc", "repro"], project)
    assert "Running stage 'train@logreg'" in second.stdout
    assert "Running stage 'features'" not in second.stdout
    assert "Running stage 'train@dense'" not in second.stdout
    assert "Running stage 'finetune@finetune_top'" not in second.stdout
    assert (project / "features/train.h5").stat().st_mtime_ns == features_written

    test_images = Path(params["data"]["dir"]) / "test"
    run([sys.executable, "-m", "pipeline.predict", str(test_images), "-o", "labels.csv"], project)  # the chosen row
    labels = pd.read_csv(project / "labels.csv")
    assert len(labels) == 18
    truth = labels["path"].str.contains("/dogs/").map({True: "dogs", False: "cats"})
    assert (labels["label"] == truth).mean() >= 0.8

    # Saved models run on the images agree with the cached arrays that scored them: the
    # fine-tuned VGG16 with its intermediate-output shortcut, a head on the averaged intermediate output,
    # the scratch CNN.
    for name in ("finetune_top", "logreg_intermediate", "scratch_cnn"):
        assert_predict_matches_scoring(project, name, test_images)

    # An image fixed in place: its features are out of date (and everything after them).
    fixed = sorted((Path(params["data"]["dir"]) / "train/cats").glob("cat*"))[1]
    with Image.open(fixed) as image:
        image.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(fixed)
    status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], project).stdout)
    assert "features" in status and "prepare" in status


def assert_predict_matches_scoring(project, name, images):
    run([sys.executable, "-m", "pipeline.predict", str(images), "--model", f"models/{name}.model", "-o", "out.csv"],
        project)
    labelled = pd.read_csv(project / "out.csv").assign(path=lambda t: t["path"].str.split("/test/").str[1])
    scored = pd.read_csv(project / f"results/{name}/predictions.csv")
    merged = scored.assign(path=scored["path"].str.split("test/").str[1]).merge(labelled, on="path")
    assert len(merged) == 16 and (merged["label"] == merged["predicted"]).all()
    # The fine-tuned VGG16 runs in float32; where the cached intermediate output that scored it was extracted
    # in bfloat16 (backbone.precision: bf16, or auto on CPUs that have it without NNCF), they differ in the third
    # decimal. In int8 predict runs the quantized network that made that output, as the heads do.
    bf16 = store.read_meta(project / "features/test.h5")["precision"] == "bf16"
    tolerance = 5e-3 if bf16 and name.startswith("finetune") else 1e-4
    assert merged["probability_x"].to_numpy() == pytest.approx(merged["probability_y"].to_numpy(), abs=tolerance)


@pytest.mark.parametrize("change, message", [
    (lambda p: p["heads"].update(bad={"type": "xgboost"}), "unknown type 'xgboost'; known types: dense"),
    (lambda p: p["data"].update(dir="/no/such/folder"), "data folder /no/such/folder not found"),
])
def test_stage_errors_are_one_line(project, change, message):
    params = yaml.safe_load((project / "params.yaml").read_text())
    change(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stage = ["pipeline.stages.train", "bad"] if "bad" in params["heads"] else ["pipeline.stages.prepare"]
    result = run([sys.executable, "-m", *stage], project, check=False)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
