"""Fused features: several backbones' pooled features at unit length, side by side, through every stage.

Random weights (no download) on a few tiny images: these check the plumbing (each backbone's own cache,
the scaling, predict and fine-tuning on a fusion), not accuracy, which benchmarks/results.md measures.
"""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import PipelineError, paths
from pipeline.config import load_params
from pipeline.features import backbone, fusion, store
from pipeline.modeling.saved_model import SavedModel
from tests.conftest import make_tree
from tests.test_stages import stage, tiny_params

PER_CLASS = 4
FUSED = ["vgg16", "mobilenetv2"]
HEADS = {"dense": {"type": "dense", "scale": "l2", "units": 8, "epochs": 2, "patience": 1},
         "logreg_intermediate": {"type": "logreg", "layer": "intermediate"}}
FINETUNE = {"tuned": {"head": "dense", "epochs": 1, "patience": 1, "batch_size": 4}}


SIZE = 64  # VGG16's last map is 2x2 here: flattened, it differs from averaged


def write_params(folder, images, name, pooling):
    params = tiny_params(images, backbone.RANDOM)
    params["backbone"].update(name=name, pooling=pooling, input_size=SIZE)
    params.update(heads=HEADS, finetune=FINETUNE, scratch={})
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """(project folder, image folder, VGG16's arrays alone by name, what the fused featurize printed): VGG16 first,
    flattened, then VGG16 with MobileNetV2 with pooling auto (VGG16's flatten, MobileNetV2's avg), the two heads
    and fine-tuning."""
    root = tmp_path_factory.mktemp("fusion")
    images = make_tree(root / "images", splits=("train", "test"), per_class=PER_CLASS)
    folder = root / "project"
    folder.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        write_params(folder, images, "vgg16", "flatten")
        stage("prepare")
        stage("featurize")
        alone = {name: store.read(paths.features_file("train"), name) for name in ("features", backbone.INTERMEDIATE)}
        write_params(folder, images, FUSED, backbone.AUTO)
        printed = capture(lambda: stage("featurize"))
        for head in HEADS:
            stage("train", head)
        stage("finetune", "tuned")
    return folder, images, alone, printed


def capture(run):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run()
    return out.getvalue()


def test_each_backbone_is_one_unit_length_block_and_the_first_is_its_own_features_rescaled(project):
    folder, _, alone, _ = project
    fused = store.read(folder / paths.features_file("train"))
    first, second = fused.meta["feature_width"].split("+")
    assert fused.X.shape[1] == int(first) + int(second) and int(first) == alone["features"].X.shape[1]
    for view in (fused.X, fused.augmented[:, 0]):
        blocks = np.split(view, [int(first)], axis=1)
        for block in blocks:
            np.testing.assert_allclose(np.linalg.norm(block, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(fused.X[:, :int(first)], fusion.unit_length(alone["features"].X), rtol=1e-5, atol=1e-7)
    assert fused.meta["backbone"] == "vgg16+mobilenetv2" and fused.meta["fusion"] == fusion.METHOD


def test_pooling_auto_pools_each_backbone_its_own_way(project):
    folder, _, alone, _ = project
    meta = store.read_meta(folder / paths.features_file("train"))
    assert meta["pooling"] == "flatten+avg"
    assert meta["feature_width"] == f"{2 * 2 * 512}+1280" and alone["features"].X.shape[1] == 2 * 2 * 512
    assert [part["pooling"] for part in fusion.parts(meta)] == ["flatten", "avg"]


def test_adding_a_backbone_extracts_only_that_one(project):
    folder, _, _, printed = project
    caches = [json.loads(p.read_text())["backbone"] for p in (folder / paths.FEATURE_CACHE).glob("*/provenance.json")]
    assert sorted(caches) == ["mobilenetv2", "vgg16"]
    meta = store.read_meta(folder / paths.features_file("train"))
    assert meta["extracted"] == 2 * PER_CLASS  # MobileNetV2's images; VGG16's came from its cache
    assert "vgg16+mobilenetv2 on keras at fp32" in printed


def test_the_intermediate_output_is_the_first_backbones(project):
    folder, _, alone, _ = project
    fused = store.read(folder / paths.features_file("train"), backbone.INTERMEDIATE)
    np.testing.assert_array_equal(fused.X, alone[backbone.INTERMEDIATE].X)
    np.testing.assert_array_equal(fused.augmented, alone[backbone.INTERMEDIATE].augmented)


def test_a_head_on_fused_features_labels_image_files_as_it_scored_them_and_names_the_fusion(project):
    folder, images, _, _ = project
    scored = pd.read_csv(folder / paths.predictions_file("dense"))
    model = SavedModel.load(folder / paths.model_file("dense"))
    np.testing.assert_allclose(model.predict_proba([images / p for p in scored["path"]]),
                               scored.filter(like="p_").to_numpy(), atol=1e-4)
    approaches = {row: json.loads((folder / paths.metrics_file(row)).read_text())["approach"]
                  for row in (*HEADS, *FINETUNE)}
    assert approaches["dense"] == "vgg16+mobilenetv2 bottleneck + dense"
    assert approaches["logreg_intermediate"] == "vgg16 intermediate features + logreg"
    assert approaches["tuned"].startswith("fine-tuned vgg16 from block5_conv1 + dense refitted on vgg16")


def test_fine_tuning_a_fusion_continues_its_first_backbone_and_labels_image_files_as_it_scored_them(project):
    folder, images, _, _ = project
    scored = pd.read_csv(folder / paths.predictions_file("tuned"))
    model = SavedModel.load(folder / paths.model_file("tuned"))
    assert model.model.name == "vgg16_finetuned"
    np.testing.assert_allclose(model.predict_proba([images / p for p in scored["path"]]),
                               scored.filter(like="p_").to_numpy(), atol=1e-4)


def test_one_weights_file_for_a_fusion_is_refused_with_what_to_do():
    with pytest.raises(PipelineError, match=r"names one file.*VGG16_IMAGENET_WEIGHTS, MOBILENETV2_IMAGENET_WEIGHTS"):
        fusion.check_weights(FUSED, "/some/vgg16.h5")
    fusion.check_weights(["vgg16"], "/some/vgg16.h5")
    fusion.check_weights(FUSED, backbone.IMAGENET)


def test_parts_split_a_fused_provenance_and_leave_one_backbones_whole():
    one = {"backbone": "vgg16", "weights_sha256": "a", "feature_width": 8, "pooling": "flatten", "input_size": 32,
           "preprocessing": "p"}
    two = {**one, "backbone": "mobilenetv2", "weights_sha256": "b", "feature_width": 5, "pooling": "avg",
           "preprocessing": "q"}
    assert fusion.provenance([one]) is one and fusion.parts(one) == [one]
    fused = fusion.provenance([one, two])
    assert fused["backbone"] == "vgg16+mobilenetv2" and fused["preprocessing"] == "p; q"
    assert fused["pooling"] == "flatten+avg"
    assert [(p["backbone"], p["weights_sha256"], p["feature_width"], p["pooling"]) for p in fusion.parts(fused)] == [
        ("vgg16", "a", "8", "flatten"), ("mobilenetv2", "b", "5", "avg")]
    # features fused before each backbone had its own pooling state the one they all had
    assert [p["pooling"] for p in fusion.parts({**fused, "pooling": "flatten"})] == ["flatten", "flatten"]


def test_a_list_of_backbones_is_a_valid_setting_and_a_repeat_or_typo_is_not(tmp_path):
    params = tiny_params(tmp_path, backbone.RANDOM)
    params["backbone"]["name"] = FUSED
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert load_params(tmp_path / "params.yaml")["backbone"]["name"] == FUSED
    assert backbone.names("vgg16") == ["vgg16"] and backbone.names(FUSED) == FUSED
    with pytest.raises(PipelineError, match="lists vgg16 twice"):
        backbone.names(["vgg16", "vgg16"])
    with pytest.raises(PipelineError, match="'mobilenet'; use one of"):
        backbone.names(["vgg16", "mobilenet"])
    with pytest.raises(PipelineError, match="empty list"):
        backbone.names([])
