import numpy as np
import pytest

from pipeline.stats import bootstrap_ci, mcnemar


def test_the_bootstrap_interval_surrounds_the_accuracy_and_narrows_with_more_images():
    small = np.array([1] * 18 + [0] * 2)
    low, high = bootstrap_ci(small)
    assert low < 0.9 < high and high <= 1
    big_low, big_high = bootstrap_ci(np.tile(small, 20))
    assert big_high - big_low < (high - low) / 3


def test_mcnemar_uses_only_the_images_exactly_one_model_gets_right():
    a = np.array([True] * 10 + [True] * 50 + [False] * 5)
    b = np.array([False] * 10 + [True] * 50 + [False] * 5)
    assert mcnemar(a, b) == pytest.approx(2 * 0.5 ** 10)  # 10 to 0 discordant pairs
    assert mcnemar(a, a) == 1.0
    balanced = np.array([True, False] * 10)
    assert mcnemar(balanced, ~balanced) == pytest.approx(1.0)
