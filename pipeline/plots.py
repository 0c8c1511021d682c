"""Figures for the report."""
import matplotlib

matplotlib.use("Agg")  # no screen on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from pipeline.files import atomic_path  # noqa: E402


def confusion_matrix(predictions, classes, title, path):
    """Save the confusion matrix of a predictions table (actual, predicted) as a PNG."""
    size = 2.5 + 0.5 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        predictions["actual"], predictions["predicted"], labels=classes, ax=ax, colorbar=False,
        xticks_rotation="vertical" if len(classes) > 4 else "horizontal",
    )
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
