import hashlib

import numpy as np
import pandas as pd
import pytest

from pipeline import PipelineError, paths
from pipeline.files import write_csv
from pipeline.modeling import selection_images


def project_with(tmp_path, monkeypatch, per_class):
    """A manifest of `per_class` training images per class (a, b) and 4 test images, no copies."""
    monkeypatch.chdir(tmp_path)
    labels = ["a", "b"] * per_class
    manifest = pd.DataFrame({"path": [f"train/{label}/{n}.png" for n, label in enumerate(labels)]
                             + [f"test/a/{n}.png" for n in range(4)],
                             "split": ["train"] * len(labels) + ["test"] * 4, "label": labels + ["a"] * 4})
    manifest["sha256"] = [hashlib.sha256(path.encode()).hexdigest() for path in manifest["path"]]
    write_csv(paths.MANIFEST, manifest)
    write_csv(paths.DUPLICATES, pd.DataFrame(columns=["group", "path", "split", "label", "kind", "left_out"]))
    train = manifest[manifest["split"] == "train"]
    return list(train["path"]), np.array([["a", "b"].index(label) for label in train["label"]])


def test_the_selection_images_are_training_images_and_a_row_without_them_keeps_every_class(tmp_path, monkeypatch):
    train_paths, y = project_with(tmp_path, monkeypatch, per_class=50)
    selected = selection_images.mask(train_paths, y, ["a", "b"], 0.2, seed=0, who="fine-tuning")
    assert 5 < selected.sum() < 35 and set(selection_images.selected_paths(0.2, 0)) <= set(train_paths)
    assert np.array(train_paths)[selected].tolist() == selection_images.selected_paths(0.2, 0)
    assert not selection_images.mask(train_paths, y, ["a", "b"], 0.0, seed=0, who="fine-tuning").any()


def test_a_class_left_with_no_image_outside_the_selection_images_is_named(tmp_path, monkeypatch):
    train_paths, y = project_with(tmp_path, monkeypatch, per_class=1)
    with pytest.raises(PipelineError, match=r"leaves class '(a|b)' no training image .* the scratch CNN cannot"):
        selection_images.mask(train_paths, y, ["a", "b"], 0.99, seed=0, who="the scratch CNN")


def test_without_selection_images_nothing_is_predicted_and_only_the_count_is_scored():
    def never(X):
        raise AssertionError("no images: nothing to predict")
    table, scores = selection_images.scored(never, np.zeros((0, 4)), np.zeros(0, int), [], ["a", "b"])
    assert scores == {"images": 0} and list(table.columns) == ["path", "actual", "p_a", "p_b"] and table.empty
    table, scores = selection_images.scored(lambda X: np.array([[0.8, 0.2], [0.4, 0.6]]), np.zeros((2, 4)),
                                            np.array([0, 1]), ["x.png", "y.png"], ["a", "b"])
    assert scores["images"] == 2 and scores["accuracy"] == 1.0 and table["actual"].tolist() == ["a", "b"]
