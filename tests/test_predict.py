import json

import joblib
import keras
import pandas as pd
import pytest

from pipeline import paths
from pipeline.features import extraction
from pipeline.files import write_json
from pipeline.modeling.feature_pass import FeaturePass
from pipeline.modeling.heads import make_head
from pipeline.modeling.saved_model import SavedModel
from pipeline.predict import main
from tests.conftest import make_tree

SETTINGS = {"input_size": 32, "pooling": "avg"}


@pytest.fixture
def saved_model(tmp_path, random_weights):
    """A logistic-regression head trained on random-VGG16 features of red and blue images."""
    files = sorted(make_tree(tmp_path / "train", per_class=8).rglob("*.png"))
    extractor = extraction.Extractor(str(random_weights), **SETTINGS).load()
    _, arrays = next(extraction.batches(extractor, extraction.IMAGE, files, [None] * len(files), len(files)))
    y = [0 if "blue" in f.parts else 1 for f in files]
    head = make_head("logreg", {"type": "logreg"}).fit(arrays["features"], y)
    path = tmp_path / "logreg.model"
    provenance = {**extractor.provenance(), "weights": str(random_weights)}
    SavedModel(head, ["blue", "red"], 32, preprocessing=FeaturePass(provenance)).save(path)
    return path


def test_a_folder_and_a_file_are_labelled_into_a_csv(tmp_path, saved_model):
    new = make_tree(tmp_path / "new", splits=("unseen",), per_class=4)
    (new / "unseen" / "red" / "readme.txt").write_text("not an image")
    out = tmp_path / "labels.csv"
    with pytest.warns(UserWarning, match="readme.txt"):
        main([str(new / "unseen" / "blue"), str(new / "unseen" / "red"), "--model", str(saved_model), "-o", str(out)])
    table = pd.read_csv(out)
    assert list(table.columns) == ["path", "label", "probability"]
    assert len(table) == 8
    truth = table["path"].str.contains("/red/").map({True: "red", False: "blue"})
    assert (table["label"] == truth).mean() >= 0.75
    assert table["probability"].between(0.5, 1).all()
    assert not (tmp_path / "labels.accuracy.json").exists()  # no folder said which class an image is


def test_a_folder_of_class_folders_is_scored(tmp_path, saved_model, capsys):
    new = make_tree(tmp_path / "new", splits=(None,), per_class=4)
    (new / "notes.txt").write_text("not an image")  # skipped: the folder is still one of class folders
    out = tmp_path / "labels.csv"
    with pytest.warns(UserWarning, match="notes.txt"):
        main([str(new), "--model", str(saved_model), "-o", str(out)])
    table = pd.read_csv(out)
    assert list(table.columns) == ["path", "actual", "label", "probability"]
    assert table["actual"].tolist() == ["blue"] * 4 + ["red"] * 4
    scored = json.loads((tmp_path / "labels.accuracy.json").read_text())
    correct = int((table["actual"] == table["label"]).sum())
    assert scored["images"] == 8 and scored["correct"] == correct and scored["accuracy"] == correct / 8
    assert {name: counts["images"] for name, counts in scored["classes"].items()} == {"blue": 4, "red": 4}
    assert sum(counts["correct"] for counts in scored["classes"].values()) == correct
    assert scored["models"] == [str(saved_model)]
    assert f"accuracy {correct / 8:.3f} ({correct} of 8 images)" in capsys.readouterr().out


def test_folders_not_named_after_the_classes_are_labelled_not_scored(tmp_path, saved_model, capsys):
    new = make_tree(tmp_path / "new", splits=("train", "test"), per_class=2)
    out = tmp_path / "labels.csv"
    main([str(new), "--model", str(saved_model), "-o", str(out)])
    assert list(pd.read_csv(out).columns) == ["path", "label", "probability"]
    assert not (tmp_path / "labels.accuracy.json").exists()
    assert "no accuracy for" in capsys.readouterr().out


def test_other_weights_than_the_models_are_refused(tmp_path, saved_model, capsys):
    other = tmp_path / "other.weights.h5"
    keras.utils.set_random_seed(1)
    keras.applications.VGG16(include_top=False, weights=None).save_weights(other)
    image = make_tree(tmp_path / "one", per_class=1) / "train" / "red" / "0.png"
    with pytest.raises(SystemExit) as exit_:
        main([str(image), "-m", str(saved_model), "--weights", str(other), "-o", str(tmp_path / "x.csv")])
    assert exit_.value.code == 2
    assert "weights differ from the ones the model was trained on" in capsys.readouterr().err


def test_a_missing_model_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--model", str(tmp_path / "nope.model")])
    err = capsys.readouterr().err
    assert err.startswith("error: model") and err.count("\n") == 1


def test_a_model_file_the_pipeline_did_not_write_is_one_line(tmp_path, saved_model, capsys):
    plain = tmp_path / "plain.model"
    joblib.dump({"model": "anything"}, plain)
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--model", str(plain)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {plain} is not a model file this pipeline wrote")


def test_without_a_model_the_reports_choice_is_used_and_an_ensemble_averages(tmp_path, saved_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image = make_tree(tmp_path / "one", per_class=1) / "train" / "red" / "0.png"
    with pytest.raises(SystemExit) as exit_:
        main([str(image)])  # nothing chosen yet
    assert exit_.value.code == 2
    write_json(paths.CHOSEN, {"row": "ensemble", "models": [str(saved_model), str(saved_model)]})
    loads = []
    monkeypatch.setattr(extraction.Extractor, "load", counted(extraction.Extractor.load, loads))
    main([str(image), "-o", "chosen.csv"])
    assert len(loads) == 1  # the ensemble's heads share one VGG16 pass
    main([str(image), "--model", str(saved_model), "-o", "single.csv"])
    chosen, single = pd.read_csv("chosen.csv"), pd.read_csv("single.csv")
    assert chosen["label"].tolist() == single["label"].tolist() == ["red"]
    assert chosen["probability"].tolist() == pytest.approx(single["probability"].tolist())


def counted(method, calls):
    def wrapper(self):
        calls.append(self)
        return method(self)
    return wrapper
