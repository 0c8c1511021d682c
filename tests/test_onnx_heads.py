"""Every head type, as its ONNX graph, gives the probabilities its predict_proba gives."""
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.features.engines import importable
from pipeline.modeling.heads import make_head
from pipeline.modeling.onnx_heads import INPUT, OUTPUT, head_to_onnx

# The ONNX export's packages are extras: make setup-extras installs them, as CI does (and make export)
needs_onnx = pytest.mark.skipif(not all(map(importable, ("onnx", "onnxruntime", "skl2onnx", "tf2onnx"))),
                                reason="make setup-extras installs the ONNX export's packages")
pytestmark = needs_onnx

SPECS = {
    "logreg": {"type": "logreg"},
    "logreg_l2": {"type": "logreg", "scale": "l2", "C": 10.0},
    "linear_svm": {"type": "linear_svm", "scale": "l2"},
    "linear_svm_standard": {"type": "linear_svm", "class_weight": "balanced"},
    "rbf_svm": {"type": "rbf_svm", "scale": "l2", "C": 10.0},
    "rbf_svm_unscaled": {"type": "rbf_svm", "scale": "none", "gamma": 0.01},
    "dense": {"type": "dense", "scale": "l2", "units": 8, "epochs": 3},
}


def vectors(n_classes, rows_per_class=20, width=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), rows_per_class)
    return (rng.normal(size=(len(y), width)) + 0.7 * y[:, None]).astype(np.float32), y


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", SPECS)
def test_the_onnx_head_gives_predict_probas_probabilities(name, n_classes):
    X, y = vectors(n_classes)
    head = make_head(name, SPECS[name]).fit(X, y)
    new, _ = vectors(n_classes, rows_per_class=7, seed=1)
    import onnxruntime

    session = onnxruntime.InferenceSession(head_to_onnx(head, X.shape[1], n_classes).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    proba = session.run([OUTPUT], {INPUT: new})[0]
    expected = head.predict_proba(new)
    assert proba.shape == (len(new), n_classes) and expected.std(axis=0).max() > 0.01
    np.testing.assert_allclose(proba, expected, atol=1e-6, rtol=0)


def test_a_head_that_never_saw_a_class_is_not_exported():
    X, y = vectors(2)
    with pytest.raises(PipelineError, match="saw 2 of the 3 classes in training"):
        head_to_onnx(make_head("logreg", SPECS["logreg"]).fit(X, y), X.shape[1], 3)
