import numpy as np
import pytest

from pipeline.report.stats import accuracy_interval, holm, mcnemar


def test_the_interval_surrounds_the_accuracy_and_narrows_with_more_images():
    small = np.array([1] * 18 + [0] * 2)
    low, high = accuracy_interval(small)
    assert low < 0.9 < high and high <= 1
    big_low, big_high = accuracy_interval(np.tile(small, 20))
    assert big_high - big_low < (high - low) / 3


def test_a_perfect_score_still_has_a_lower_bound_below_one():
    low, high = accuracy_interval(np.ones(150, dtype=bool))
    assert high == 1 and low == pytest.approx(0.025 ** (1 / 150))  # Clopper-Pearson at 150/150: 0.976
    low, high = accuracy_interval(np.zeros(10, dtype=bool))
    assert low == 0 and 0.2 < high < 0.35


def test_mcnemar_uses_only_the_images_exactly_one_model_gets_right():
    a = np.array([True] * 10 + [True] * 50 + [False] * 5)
    b = np.array([False] * 10 + [True] * 50 + [False] * 5)
    assert mcnemar(a, b) == pytest.approx(2 * 0.5 ** 10)  # 10 to 0 discordant pairs
    assert mcnemar(a, a) == 1.0
    balanced = np.array([True, False] * 10)
    assert mcnemar(balanced, ~balanced) == pytest.approx(1.0)


def test_holm_multiplies_the_smallest_p_by_the_number_of_tests_and_keeps_the_order():
    adjusted = holm([np.nan, 0.01, 0.04, 0.03, 0.5])
    assert np.isnan(adjusted[0])
    np.testing.assert_allclose(adjusted[1:], [0.04, 0.09, 0.09, 0.5])  # 4*0.01, max(3*0.03, 2*0.04)
    assert holm([0.9, 0.8])[0] == 1.0  # never above one
