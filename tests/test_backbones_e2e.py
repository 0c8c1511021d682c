"""Every registered backbone through the stages, on random weights (backbone.weights: random, no download).

A few tiny images, Keras fp32, one epoch: this checks what each network needs from the pipeline (its own
preprocessing, its intermediate layer, fine-tuning its top part, the saved models on image files), not
accuracy, which untrained weights cannot give. VGG16, the default, is left to tests/test_stages.py (random
weights) and tests/test_end_to_end.py (its real ones), which run the same stages.
"""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import paths
from pipeline.features import backbone, store
from pipeline.modeling.saved_model import SavedModel
from pipeline.quiet_keras import keras
from tests.conftest import make_tree, shared_setting
from tests.test_stages import stage, tiny_params

PER_CLASS = 4  # per class and split: 8 training and 8 test images
HEADS = {"dense": {"type": "dense", "scale": "l2", "units": 8, "epochs": 2, "patience": 1},
         "logreg_intermediate": {"type": "logreg", "layer": "intermediate"}}
# A large step, so that one epoch visibly moves every trained weight.
FINETUNE = {"tuned": {"head": "dense", "epochs": 1, "patience": 1, "batch_size": 4, "learning_rate": 0.05}}


@pytest.fixture(scope="module", params=[name for name in backbone.BACKBONES if name != backbone.DEFAULT])
def project(request, tmp_path_factory):
    """(backbone name, project folder, image folder) after prepare, features, the two heads and fine-tuning."""
    name = request.param
    root = tmp_path_factory.mktemp(name)
    images = make_tree(root / "images", splits=("train", "test"), per_class=PER_CLASS)
    params = tiny_params(images, backbone.RANDOM)
    params["backbone"]["name"] = name
    params.update(heads=HEADS, finetune=FINETUNE, scratch={})
    (root / "project").mkdir()
    (root / "project/params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root / "project")
        stage("prepare")
        stage("featurize")
        for head in HEADS:
            stage("train", head)
        stage("finetune", "tuned")
    return name, root / "project", images


@pytest.fixture(scope="module")
def fine_tuned(project):
    """The saved fine-tuned model, loaded once per backbone (a few seconds each)."""
    return SavedModel.load(project[1] / paths.model_file("tuned"))


def held_out_scores(project, row):
    """(image files, the probabilities the row's held-out score used), in the same order."""
    _, folder, images = project
    scored = pd.read_csv(folder / paths.predictions_file(row))
    return [images / path for path in scored["path"]], scored.filter(like="p_").to_numpy()


def test_the_features_record_the_backbone_and_hold_its_intermediate_output(project):
    name, folder, _ = project
    entry = backbone.get(name)
    meta = store.read_meta(folder / paths.features_file("train"))
    assert (meta["backbone"], meta["weights"], meta["preprocessing"]) == (name, "random", entry.preprocessing_text)
    intermediate = store.read(folder / paths.features_file("train"), backbone.INTERMEDIATE)
    assert intermediate.X.ndim == 4 and intermediate.augmented.shape[1] == 1  # (images, rows, columns, channels)
    (cache,) = (folder / paths.FEATURE_CACHE).glob("*/provenance.json")
    assert json.loads(cache.read_text())["backbone"] == name


def test_the_heads_and_fine_tuning_are_scored(project):
    _, folder, _ = project
    for row in (*HEADS, *FINETUNE):
        metrics = json.loads((folder / paths.metrics_file(row)).read_text())
        assert metrics["heldout"]["images"] == 2 * PER_CLASS
    assert json.loads((folder / paths.metrics_file("tuned")).read_text())["speedup"] > 0


def test_the_saved_fine_tuned_network_on_image_files_gives_its_held_out_scores(project, fine_tuned):
    """Its own preprocessing inside the saved model, and the top part run from the cached intermediate output,
    give what the whole network gives on the images."""
    files, proba = held_out_scores(project, "tuned")
    np.testing.assert_allclose(fine_tuned.predict_proba(files), proba, atol=1e-4)


def test_fine_tuning_trains_the_top_part_and_leaves_the_rest_and_batch_normalisation_as_they_were(project,
                                                                                                  fine_tuned):
    name = project[0]
    (tuned,) = [layer for layer in fine_tuned.model.layers if isinstance(layer, keras.Model)]
    before = backbone.conv_base(backbone.RANDOM, 32, name)
    trained = {id(layer) for layer in backbone.tuned_layers(before, name)}
    # Paired by position: Keras numbers unnamed layers (ConvNeXt's last normalisation) anew in each model.
    assert [layer.name for layer in tuned.layers][-1] == "head" and len(tuned.layers) == len(before.layers) + 1
    changed = {}
    for layer, after in zip(before.layers, tuned.layers):
        if layer.weights:
            pairs = zip(layer.get_weights(), after.get_weights())
            changed[layer.name] = any(not np.array_equal(old, new) for old, new in pairs)
            assert changed[layer.name] == (id(layer) in trained), layer.name
    assert sum(changed.values()) >= 2


def test_a_head_on_the_intermediate_output_labels_image_files_as_it_scored_them(project):
    _, folder, _ = project
    files, proba = held_out_scores(project, "logreg_intermediate")
    model = SavedModel.load(folder / paths.model_file("logreg_intermediate"))
    np.testing.assert_allclose(model.predict_proba(files), proba, atol=1e-4)


@pytest.mark.parametrize("name", ["densenet121", "mobilenetv2", ["vgg16", "mobilenetv2"]], ids=str)
def test_real_weights_through_the_stages_tell_cats_from_dogs(name, tmp_path, shared_datasets):
    """The offline ImageNet weights of each backbone (and a fusion) that .ci/run points at, through prepare,
    features and a head, on 8 cats and 8 dogs to train on and as many to score: nearly all right, where
    random weights score about half."""
    for part in backbone.names(name):
        shared_setting(backbone.get(part).weights_env)
    images = tmp_path / "images"
    for split in ("train", "test"):
        for label in ("cats", "dogs"):
            (images / split / label).mkdir(parents=True)
            for file in sorted((shared_datasets / "cats-dogs-small" / split / label).iterdir())[:8]:
                (images / split / label / file.name).symlink_to(file)
    params = tiny_params(images, backbone.IMAGENET)
    params["backbone"].update(name=name, input_size=150)
    params["augment"]["copies"] = 0
    params.update(heads={"logreg_l2": {"type": "logreg", "scale": "l2", "C": 10.0}}, finetune={}, scratch={})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        for step in ("prepare", "featurize"):
            stage(step)
        stage("train", "logreg_l2")
    scores = json.loads((tmp_path / paths.metrics_file("logreg_l2")).read_text())["heldout"]
    assert scores["images"] == 16 and scores["accuracy"] >= 14 / 16
