"""Every DVC stage's entry point, in order, on a few synthetic images with random VGG16 weights.

No dataset and no ImageNet weights: these check the plumbing between the stages (what each writes, what
the next one reads, exit status and messages), not the accuracy, which tests/test_end_to_end.py checks
on real photos.
"""
import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import PipelineError, paths, predict
from pipeline.features import store
from pipeline.modeling import live, selection_images
from pipeline.modeling.saved_model import SavedModel
from tests.conftest import COLOURS, make_tree, write_image

PROJECT = Path(__file__).resolve().parents[1]
PER_CLASS = 6  # per class and split: 12 training and 12 test images
ROWS = {"heads": ["logreg", "logreg_intermediate", "dense"], "finetune": ["finetune_top"],
        "scratch": ["scratch_cnn", "scratch_at_backbone_size"]}
SELECTION = 0.2  # params.yaml's: two of the 12 training images at the shipped seed


def stage(name, *argv):
    importlib.import_module(f"pipeline.stages.{name}").main(list(argv))


def tiny_params(images, weights):
    """The project's params.yaml, with every setting made small: a run of seconds."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"]["dir"] = str(images)
    params["backbone"].update(name="vgg16", weights=str(weights), input_size=32, engine="keras", precision="fp32",
                              batch_size=8, runner="local")  # a VGG16 weights file: VGG16 alone
    params["augment"].update(copies=1, horizontal_flip=True)
    params["evaluate"].update(folds=2, tta=True, selection=SELECTION)
    params["heads"] = {"logreg": {"type": "logreg", "C": 1.0},
                       "logreg_intermediate": {"type": "logreg", "layer": "intermediate"},
                       "dense": {"type": "dense", "scale": "l2", "units": 16, "epochs": 3, "patience": 2}}
    params["finetune"] = {"finetune_top": {"head": "dense", "epochs": 1, "patience": 1, "batch_size": 8}}
    params["scratch"] = {"scratch_cnn": {"input_size": 48, "epochs": 1, "patience": 1, "batch_size": 8},
                         "scratch_at_backbone_size": {"epochs": 1, "patience": 1, "batch_size": 8}}
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory, random_weights):
    """A project folder after every stage has run once, in dvc.yaml's order; and what the stages printed."""
    root = tmp_path_factory.mktemp("stages")
    images = make_tree(root / "images", splits=("train", "test"), per_class=PER_CLASS)
    (root / "project").mkdir()
    (root / "project/params.yaml").write_text(yaml.safe_dump(tiny_params(images, random_weights), sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root / "project")
        stage("prepare")
        stage("featurize")
        for name in ROWS["heads"]:
            stage("train", name)
        stage("finetune", "finetune_top")
        for name in ROWS["scratch"]:
            stage("scratch", name)
        stage("report")
    return root / "project"


def test_prepare_lists_every_image_with_its_split_label_and_hash(project):
    manifest = pd.read_csv(project / paths.MANIFEST)
    assert manifest.groupby(["split", "label"]).size().tolist() == [PER_CLASS] * 4
    assert manifest["sha256"].str.fullmatch("[0-9a-f]{64}").all()
    assert pd.read_csv(project / paths.SKIPPED).empty
    assert (project / paths.DUPLICATES).exists()


def test_prepare_splits_an_unsplit_folder_by_content_and_names_what_it_leaves_out(tmp_path, monkeypatch):
    images = make_tree(tmp_path / "images", splits=(None,), per_class=20)
    (images / "red/0_copy.png").write_bytes((images / "red/0.png").read_bytes())
    (images / "loose.png").write_bytes((images / "red/1.png").read_bytes())
    (images / "green").mkdir()
    (images / "green/scan.tif").write_text("not an image")
    params = tiny_params(images, "unused")
    params["data"]["split"].update(validation=0.2, test=0.2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning) as warned:
        stage("prepare")
    manifest = pd.read_csv(paths.MANIFEST).set_index("path")
    assert set(manifest["split"]) == {"train", "validation", "test"} and len(manifest) == 41
    assert manifest.loc["red/0.png", "split"] == manifest.loc["red/0_copy.png", "split"]  # copies on one side
    again = pd.read_csv(paths.DUPLICATES)
    assert (again["split"] == manifest.loc["red/0.png", "split"]).all() and not again["left_out"].any()
    skipped = pd.read_csv(paths.SKIPPED).set_index("path")["reason"]
    assert sorted(skipped.index) == ["green/", "green/scan.tif", "loose.png"]
    said = [str(warning.message) for warning in warned]
    assert any(line.startswith("skipping green/: no readable image") for line in said)
    assert any(line.startswith("skipping loose.png: it lies directly in data.dir") for line in said)


def test_featurize_writes_each_split_with_its_copies_mirrors_and_provenance(project):
    train = store.read(project / paths.features_file("train"))
    test = store.read(project / paths.features_file("test"))
    assert len(train.y) == 2 * PER_CLASS and train.views().shape[:2] == (2 * PER_CLASS, 2)  # image and one copy
    assert train.flipped is None and test.flipped is not None  # mirror images of held-out images only (TTA)
    images, mirrored, labels = store.mirror_sample(project / paths.features_file("train"))  # the flip check's
    assert np.array_equal(images, train.X) and (labels == train.y).all() and mirrored.shape == images.shape  # all 12
    assert not np.allclose(images, mirrored) and store.mirror_sample(project / paths.features_file("test")) is None
    assert test.augmented is None  # held-out images are never augmented
    assert train.classes == ["blue", "red"]
    meta = store.read_meta(project / paths.features_file("train"))
    assert (meta["engine"], meta["precision"], int(meta["input_size"])) == ("keras", "fp32", 32)
    assert int(meta["extracted"]) == 2 * PER_CLASS


def test_featurize_again_takes_every_image_from_the_cache(project, monkeypatch):
    monkeypatch.chdir(project)
    stage("featurize")
    assert int(store.read_meta(paths.features_file("train"))["extracted"]) == 0
    assert int(store.read_meta(paths.features_file("test"))["extracted"]) == 0


def test_every_row_leaves_its_model_metrics_and_predictions(project):
    for section, names in ROWS.items():
        for name in names:
            metrics = json.loads((project / paths.metrics_file(name)).read_text())
            assert metrics["heldout"]["images"] == 2 * PER_CLASS
            assert (project / paths.model_file(name)).stat().st_size > 0
            assert len(pd.read_csv(project / paths.predictions_file(name))) == 2 * PER_CLASS
            assert ("cv" in metrics) == (section == "heads")  # only heads are cross-validated
            assert (project / paths.out_of_fold_file(name)).exists() == (section == "heads")
    for name in ("dense", "finetune_top", *ROWS["scratch"]):  # the Keras rows: DVCLive's curves
        curves = live.read_curves(project / live.directory(name))
        assert len(curves) >= 1 and {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(curves)
    assert not (project / live.directory("logreg")).exists()
    # Of the dense head's CV folds and final fit, the final fit's curves, named for DVC by DVCLive's dvc.yaml
    final_fit = SavedModel.load(project / paths.model_file("dense")).model[-1].history_
    assert live.read_curves(project / live.directory("dense"))["val_loss"].tolist() == pytest.approx(
        final_fit["val_loss"], rel=1e-6)
    assert (project / live.own_dvcyaml("dense")).exists() and not (project / live.own_dvcyaml("scratch_cnn")).exists()


def test_a_scratch_cnn_runs_at_the_backbones_size_unless_it_sets_its_own_and_the_report_says_so(project):
    sizes = {name: json.loads((project / paths.metrics_file(name)).read_text())["input_size"]
             for name in ROWS["scratch"]}
    assert sizes == {"scratch_cnn": 48, "scratch_at_backbone_size": 32}
    summary = pd.read_csv(project / paths.REPORTS / "summary.csv").set_index("row")
    assert summary.loc["scratch_cnn", "input_size"] == 48 and summary.loc["logreg", "input_size"] == 32
    assert "input px" in (project / paths.REPORTS / "report.md").read_text()


def test_the_report_compares_every_row_on_the_selection_images_and_chooses_one(project, monkeypatch):
    summary = pd.read_csv(project / paths.REPORTS / "summary.csv")
    assert sorted(summary["row"]) == sorted([*ROWS["heads"], "ensemble", *ROWS["finetune"], *ROWS["scratch"]])
    assert (summary["images"] == 2 * PER_CLASS).all()
    monkeypatch.chdir(project)
    selected = selection_images.selected_paths(SELECTION, seed=42)
    assert 0 < len(selected) < 2 * PER_CLASS and (summary["selection_images"] == len(selected)).all()
    assert summary["selection_accuracy"].notna().all() and summary["selection_log_loss"].notna().all()
    for name in (*ROWS["finetune"], *ROWS["scratch"]):  # scored on the very images they left out
        assert pd.read_csv(paths.selection_file(name))["path"].tolist() == selected
    chosen = json.loads(paths.CHOSEN.read_text())
    assert summary.loc[summary["chosen"], "row"].tolist() == [chosen["row"]]
    assert chosen["selection_images"] == len(selected) and "strictly more selection images right" in chosen["rule"]
    assert f"**Chosen: {chosen['row']}**" in Path(paths.REPORTS / "report.md").read_text()


def test_a_fine_tuned_row_is_chosen_only_when_it_gets_more_selection_images_right_and_predict_follows(
        project, tmp_path, monkeypatch):
    copy = shutil.copytree(project, tmp_path / "project")
    monkeypatch.chdir(copy)
    selected = selection_images.selected_paths(SELECTION, seed=42)

    def rewrite(file, right):
        """The probabilities in `file` made sure and right (or wrong) on the selection images."""
        table = pd.read_csv(file)
        on = table["path"].isin(selected)
        truth = table["actual"] == "red"
        table.loc[on, "p_red"] = np.where(truth[on] == right, 0.9, 0.1)
        table.loc[on, "p_blue"] = 1 - table.loc[on, "p_red"]
        table.to_csv(file, index=False)

    rewrite(paths.selection_file("finetune_top"), right=False)
    stage("report")
    assert json.loads(paths.CHOSEN.read_text())["row"] in [*ROWS["heads"], "ensemble"]
    rewrite(paths.selection_file("finetune_top"), right=True)
    for name in ROWS["heads"]:
        rewrite(paths.out_of_fold_file(name), right=False)
    stage("report")
    chosen = json.loads(paths.CHOSEN.read_text())
    assert chosen["row"] == "finetune_top" and chosen["models"] == [str(paths.model_file("finetune_top"))]
    assert chosen["selection_accuracy"] == 1.0 and chosen["cv_accuracy"] is None
    predict.main([str(project.parent / "images" / "test"), "-o", "labels.csv"])  # the chosen row by default
    assert len(pd.read_csv("labels.csv")) == 2 * PER_CLASS


def test_fine_tuning_run_again_on_the_trained_dense_head_itself_gives_the_same_model(project, tmp_path, monkeypatch):
    """With no selection images and one backbone it starts from the train stage's head as saved, whose dropout
    draws its seed as it is loaded: seeded first, two runs agree."""
    copy = shutil.copytree(project, tmp_path / "project")
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["evaluate"]["selection"] = 0.0
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(copy)
    runs = []
    for _ in range(2):
        stage("finetune", "finetune_top")
        runs.append(pd.read_csv(paths.predictions_file("finetune_top")))
    pd.testing.assert_frame_equal(*runs)


def test_a_report_with_a_row_not_yet_trained_says_to_run_dvc_repro(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["heads"]["logreg_strong"] = {"type": "logreg", "C": 100.0}
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        with pytest.raises(SystemExit) as exit:
            stage("report")
    finally:
        del params["heads"]["logreg_strong"]
        Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert exit.value.code == 2
    assert capsys.readouterr().err == "error: no results for logreg_strong: run `dvc repro` first\n"


@pytest.mark.parametrize("argv, message", [
    ((), "usage: python -m pipeline.stages.<stage> NAME (a name under heads: in params.yaml)"),
    (("nothing",), "params.yaml has no 'nothing' under heads; there: logreg, logreg_intermediate, dense"),
])
def test_a_row_stage_without_a_known_name_exits_with_one_line(project, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(project)
    with pytest.raises(SystemExit) as exit:
        stage("train", *argv)
    assert exit.value.code == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_int8_features_keep_their_calibration_as_images_come_and_heads_predict_with_the_quantized_network(
        tmp_path, random_weights, monkeypatch):
    from pipeline.features import engines

    try:
        engines.resolve("openvino", "int8")
    except PipelineError as cannot_run_here:
        pytest.skip(str(cannot_run_here))
    images = make_tree(tmp_path / "images", splits=("train", "test"), per_class=PER_CLASS)
    params = tiny_params(images, random_weights)
    params["backbone"].update(engine="openvino", precision="int8")
    params.update(heads={"logreg": params["heads"]["logreg"]}, finetune={}, scratch={})
    (tmp_path / "project").mkdir()
    (tmp_path / "project/params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path / "project")
    stage("prepare")
    stage("featurize")
    meta = store.read_meta(paths.features_file("train"))
    assert (meta["precision"], int(meta["calibration_images"])) == ("int8", 2 * PER_CLASS)  # fewer than 300: all
    assert "nncf" in meta["engine_version"] and store.read_meta(paths.features_file("test"))["calibration_sha256"] == \
        meta["calibration_sha256"]
    stage("train", "logreg")
    model = SavedModel.load(paths.model_file("logreg"))
    assert set(model.preprocessing.networks) == {"vgg16"}
    # predict runs the very network that made the scored features: the same probabilities, not nearly
    predict.main([str(images / "test"), "--model", str(paths.model_file("logreg")), "-o", "labels.csv"])
    labelled = pd.read_csv("labels.csv").assign(path=lambda t: t["path"].str.split("/test/").str[1])
    scored = pd.read_csv(paths.predictions_file("logreg"))
    merged = scored.assign(path=scored["path"].str.split("test/").str[1]).merge(labelled, on="path")
    assert len(merged) == 2 * PER_CLASS and (merged["label"] == merged["predicted"]).all()
    assert merged["probability_x"].to_numpy() == pytest.approx(merged["probability_y"].to_numpy(), abs=1e-6)
    stage("report")
    report = (paths.REPORTS / "report.md").read_text()
    assert "extracted on openvino at int8 (quantized on 12 training images)" in report
    # A new training image keeps the calibration set (all its images are still training images): one extraction.
    write_image(images / "train/red/new.png", COLOURS["red"], seed=99)
    stage("prepare")
    stage("featurize")
    again = store.read_meta(paths.features_file("train"))
    assert again["calibration_sha256"] == meta["calibration_sha256"] and int(again["extracted"]) == 1
    # One of its images gone: a new set, and every image extracted again with the network quantized on it.
    (images / "train/red/0.png").unlink()
    stage("prepare")
    stage("featurize")
    redrawn = store.read_meta(paths.features_file("train"))
    assert redrawn["calibration_sha256"] != meta["calibration_sha256"]
    assert int(redrawn["extracted"]) == 2 * PER_CLASS
