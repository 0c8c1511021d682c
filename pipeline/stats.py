"""How sure a held-out accuracy is, and whether two models' accuracies on the same images differ."""
import numpy as np
from scipy.stats import binomtest


def bootstrap_ci(correct, level=0.95, resamples=2000, seed=0):
    """Percentile bootstrap interval of the accuracy, resampling the scored images."""
    correct = np.asarray(correct, dtype=float)
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, len(correct), (resamples, len(correct)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return tuple(np.percentile(means, [tail, 100 - tail]))


def mcnemar(correct_a, correct_b):
    """Exact McNemar p-value: are the two models' errors on the same images unevenly split?

    Only the images exactly one model gets right carry information; under "no difference"
    each of them is equally likely to favour either model.
    """
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    if only_a + only_b == 0:
        return 1.0
    return binomtest(only_a, only_a + only_b, 0.5).pvalue
