"""The exported ONNX graph gives predict's probabilities, from pixels alone, for every kind of row."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import PipelineError, paths
from pipeline.data.images import load_image
from pipeline.export import export, main
from pipeline.features import backbone, extraction, fusion
from pipeline.files import write_json
from pipeline.modeling import heads
from pipeline.modeling.feature_pass import FeaturePass
from pipeline.modeling.finetune import FineTuner, taking_images
from pipeline.modeling.heads import make_head
from pipeline.modeling.networks import Views
from pipeline.modeling.saved_model import SavedModel, average_proba
from pipeline.modeling.scratch import ScratchCNN, without_augmentation
from tests.conftest import make_tree
from tests.test_augment import ON
from tests.test_onnx_heads import needs_onnx

pytestmark = needs_onnx

SIZE = 32
CLASSES = ["blue", "red"]
HEADS = {  # name: (params.yaml's heads.NAME, TTA)
    "logreg": ({"type": "logreg"}, False),
    "rbf_svm": ({"type": "rbf_svm", "scale": "l2", "C": 10.0}, True),
    "dense": ({"type": "dense", "scale": "l2", "units": 16, "epochs": 30, "learning_rate": 0.05, "patience": 30}, True),
    "linear_svm_intermediate": ({"type": "linear_svm", "layer": "intermediate"}, True),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, random_weights):
    """(SavedModels by row name, new image files): heads on random-VGG16 features of red and blue images, and a
    VGG16 fine-tuned for an epoch on top of the dense head, as the stages save them."""
    root = tmp_path_factory.mktemp("export")
    files = sorted(make_tree(root / "train", per_class=8).rglob("*.png"))
    new = sorted(make_tree(root / "new", splits=("unseen",), per_class=3).rglob("*.png"))
    extractor = extraction.Extractor(str(random_weights), SIZE, "avg").load()
    arrays = extraction.arrays(extractor, extraction.IMAGE, files, [None] * len(files), len(files))
    y = np.array([CLASSES.index(f.parent.name) for f in files])
    provenance = {**extractor.provenance(), "weights": str(random_weights)}
    models = {}
    for name, (spec, tta) in HEADS.items():
        layer = spec.get("layer", heads.DEFAULT_LAYER)
        vectors = heads.vectors(arrays[heads.LAYERS[layer][0]], layer)
        models[name] = SavedModel(make_head(name, spec).fit(vectors, y), CLASSES, SIZE, tta=tta,
                                  preprocessing=FeaturePass(provenance, layer))
    block4 = arrays[backbone.INTERMEDIATE]
    tuner = FineTuner(models["dense"].model, str(random_weights), SIZE, "avg", epochs=1, batch_size=8,
                      expected_sha256=provenance["weights_sha256"]).fit(Views(block4, y), (block4, y))
    models["finetune"] = SavedModel(taking_images(tuner.model_), CLASSES, SIZE, tta=True)
    return models, new


def onnx_proba(graph, files, size=SIZE):
    """ONNX Runtime's probabilities of image files, read as predict reads them."""
    import onnxruntime

    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"images": np.stack([load_image(f, size) for f in files])})[0]


@pytest.mark.parametrize("rows", [["rbf_svm"], ["dense"], ["finetune"],
                                  ["rbf_svm", "dense", "linear_svm_intermediate"]],
                         ids=["svm", "dense", "finetuned", "ensemble"])  # logreg: the command's test below
def test_onnx_runtime_gives_predicts_probabilities(trained, rows):
    models, new = trained
    chosen = [models[row] for row in rows]
    graph = export(chosen)
    expected = average_proba(chosen, new)
    assert expected.std(axis=0).max() > 1e-3  # the images get different answers: the comparison can fail
    np.testing.assert_allclose(onnx_proba(graph, new), expected, atol=1e-4, rtol=0)
    if len(rows) > 1:  # one backbone pass feeds every head of the ensemble
        convolutions = [node for node in graph.graph.node if node.op_type == "Conv"]
        assert len(convolutions) == 13


def test_the_scratch_cnn_is_exported_whole(tmp_path):
    y = np.repeat([0, 1], 6)
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(80 + 80 * y[:, None, None, None], 20, (12, 48, 48, 3)), 0, 255).astype(np.uint8)
    augmentation = {**ON, "shear": 0.2}
    cnn = ScratchCNN(augmentation, epochs=1, batch_size=4).fit(images, y)
    model = SavedModel(without_augmentation(cnn.model_, augmentation), CLASSES, 48, tta=True)
    files = [tmp_path / f"{n}.png" for n in range(4)]
    for file, pixels in zip(files, images[4:8]):
        Image.fromarray(pixels).save(file)
    np.testing.assert_allclose(onnx_proba(export([model]), files, 48), model.predict_proba(files), atol=1e-4, rtol=0)


def test_the_command_exports_the_reports_chosen_row_with_its_classes(tmp_path, trained, monkeypatch, capsys):
    models, new = trained
    monkeypatch.chdir(tmp_path)
    models["logreg"].save(paths.model_file("logreg"))
    write_json(paths.CHOSEN, {"row": "logreg", "models": [str(paths.model_file("logreg"))]})
    main([])
    import onnx

    graph = onnx.load(paths.EXPORTED)
    metadata = {prop.key: prop.value for prop in graph.metadata_props}
    assert json.loads(metadata["classes"]) == CLASSES and metadata["input_size"] == str(SIZE)
    assert [i.name for i in graph.graph.input] == ["images"] and [o.name for o in graph.graph.output] == [
        "probabilities"]
    expected = models["logreg"].predict_proba(new)
    np.testing.assert_allclose(onnx_proba(graph, new), expected, atol=1e-4, rtol=0)
    assert f"written to {paths.EXPORTED}" in capsys.readouterr().out
    # The README's lines that run it with Pillow, numpy and onnxruntime alone, on the same images
    (tmp_path / "label.py").write_text(readme_example())
    printed = subprocess.run([sys.executable, "label.py", *map(str, new)], check=True, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": ""}).stdout.split("\n")[:-1]
    assert [line.split()[:2] for line in printed] == [[str(f), CLASSES[row.argmax()]] for f, row in zip(new, expected)]
    np.testing.assert_allclose([float(line.split()[2]) for line in printed], expected.max(axis=1), atol=1e-4)


def readme_example():
    """The Python block of the README's "Using a model elsewhere"."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Using a model elsewhere"):]
    return section[section.index("```python\n") + 10:section.index("```\n", section.index("```python"))]


def test_models_of_other_runs_are_not_exported_together(trained):
    models, _ = trained
    other = SavedModel(models["logreg"].model, ["cats", "dogs"], SIZE, preprocessing=models["logreg"].preprocessing)
    with pytest.raises(PipelineError, match="different classes"):
        export([models["logreg"], other])


def test_a_head_on_fused_backbones_runs_every_backbone_in_the_graph(tmp_path):
    """The shipped default fuses VGG16 and MobileNetV2, each pooled its own way (backbone.pooling: auto): the graph
    joins their unit-length features as predict does."""
    files = sorted(make_tree(tmp_path / "train", per_class=6).rglob("*.png"))
    new = sorted(make_tree(tmp_path / "new", splits=("unseen",), per_class=3).rglob("*.png"))
    outputs, parts = [], []
    for name in ("vgg16", "mobilenetv2"):
        extractor = extraction.Extractor(backbone.RANDOM, SIZE, backbone.pooling_for(backbone.AUTO, name),
                                         backbone=name).load()
        outputs.append(extraction.arrays(extractor, extraction.IMAGE, files, [None] * len(files), len(files)))
        parts.append({**extractor.provenance(), "feature_width": outputs[-1]["features"].shape[-1]})
    y = np.array([CLASSES.index(f.parent.name) for f in files])
    head = make_head("logreg_l2", {"type": "logreg", "scale": "l2"}).fit(fusion.combine(outputs)["features"], y)
    model = SavedModel(head, CLASSES, SIZE, preprocessing=FeaturePass({**fusion.provenance(parts),
                                                                       "weights": backbone.RANDOM}))
    graph = export([model])
    np.testing.assert_allclose(onnx_proba(graph, new), average_proba([model], new), atol=1e-4, rtol=0)
