"""How sure a held-out accuracy is, and whether two models' accuracies on the same images differ."""
import numpy as np
from scipy.stats import binomtest


def accuracy_interval(correct, level=0.95):
    """Exact (Clopper-Pearson) interval of the accuracy: it holds at 0 and 1 errors too.

    150 right of 150 gives 0.976-1.000, not the bootstrap's empty 1.000-1.000.
    """
    correct = np.asarray(correct, dtype=bool)
    interval = binomtest(int(correct.sum()), len(correct)).proportion_ci(level, method="exact")
    return interval.low, interval.high


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


def holm(p_values):
    """Holm's step-down adjustment: p-values that keep the chance of any false 'differs' under alpha.

    NaN entries (the row everything is compared with) stay NaN and do not count as tests.
    """
    p = np.asarray(p_values, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    adjusted = np.full_like(p, np.nan)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted
