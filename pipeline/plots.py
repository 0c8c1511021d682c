"""Figures for the report."""
import matplotlib

matplotlib.use("Agg")  # no screen on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from pipeline.files import atomic_path  # noqa: E402
from pipeline.images import to_rgb  # noqa: E402


def save(fig, path):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def confusion_matrix(predictions, classes, title, path):
    """Save the confusion matrix of a predictions table (actual, predicted) as a PNG."""
    size = 2.5 + 0.5 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        predictions["actual"], predictions["predicted"], labels=classes, ax=ax, colorbar=False,
        xticks_rotation="vertical" if len(classes) > 4 else "horizontal",
    )
    ax.set_title(title)
    save(fig, path)


def learning_curve(history, title, path):
    """Loss and accuracy per epoch, on the training data and on the early-stopping data."""
    metrics = [m for m in ("loss", "accuracy") if m in history]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.plot(history["epoch"], history[metric], label="training")
        if f"val_{metric}" in history:
            ax.plot(history["epoch"], history[f"val_{metric}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
    fig.suptitle(title)
    save(fig, path)


def image_grid(files, captions, title, path, columns=6, thumb=128):
    """The images in a grid, each with its caption above it."""
    columns = min(columns, len(files))
    rows = (len(files) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, file, caption in zip(axes.ravel(), files, captions):
        ax.imshow(thumbnail(file, thumb))
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title)
    save(fig, path)


def image_groups(groups, path, thumb=96):
    """One row of thumbnails per group; `groups` holds a list of (file, caption) per row."""
    columns = max(len(group) for group in groups)
    fig, axes = plt.subplots(len(groups), columns, figsize=(1.8 * columns, 1.9 * len(groups)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for row, group in zip(axes, groups):
        for ax, (file, caption) in zip(row, group):
            ax.imshow(thumbnail(file, thumb))
            ax.set_title(caption, fontsize=7)
    save(fig, path)


def thumbnail(file, size):
    with Image.open(file) as image:
        return to_rgb(image).resize((size, size))
