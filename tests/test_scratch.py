import numpy as np
import pytest
from sklearn.base import clone

from pipeline import PipelineError
from pipeline.scratch import ScratchCNN
from tests.test_augment import ON


def test_the_scratch_cnn_trains_and_augments_only_while_training():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 8)
    X = np.clip(rng.normal(60 + 60 * y[:, None, None, None], 20, (24, 48, 48, 3)), 0, 255).astype(np.uint8)
    cnn = ScratchCNN(ON, epochs=3, patience=3, batch_size=8)
    assert clone(cnn).get_params() == cnn.get_params()
    assert cnn.fit(X, y) is cnn and len(cnn.history_["val_loss"]) == 3
    proba = cnn.predict_proba(X)
    assert proba.shape == (24, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-9)
    np.testing.assert_array_equal(proba, cnn.predict_proba(X))  # no random layers at inference


def test_an_input_too_small_for_four_poolings_is_explained():
    with pytest.raises(PipelineError, match="input_size 46 or more"):
        ScratchCNN(epochs=1).fit(np.zeros((4, 40, 40, 3), np.uint8), np.array([0, 1, 0, 1]))
