"""Figures for the report."""
import matplotlib

matplotlib.use("Agg")  # no screen on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from pipeline.data.images import to_rgb  # noqa: E402
from pipeline.files import atomic_path  # noqa: E402

CELL = (1.7, 1.9)  # inches per image in the grouped figures, its caption above it


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
    """Thumbnails in groups, each group whole on a line; `groups` holds a list of (file, caption) per group."""
    cell_groups(
        [[(thumbnail(file, thumb), caption, False) for file, caption in group] for group in groups], "", path)


def augmentation_preview(images, title, path):
    """Images beside their augmented copies; `images` holds (image, caption, [(copy, caption), ...]) per image.

    Arrays are in 0-255. The images' captions are bold, so each image's group reads at a glance.
    """
    cell_groups([[(image, caption, True)] + [(copy, text, False) for copy, text in copies]
                 for image, caption, copies in images], title, path)


def cell_groups(groups, title, path, line_width=8, gap=0.3):
    """Groups of (array, caption, bold) cells, as many whole groups to a line as fit in `line_width` cells.

    A blank `gap` (in cells) between groups keeps them apart; a group wider than a line has a line to itself.
    """
    width = max(len(group) for group in groups)
    per_line = max(1, min(len(groups), line_width // width))
    lines = (len(groups) + per_line - 1) // per_line
    ratios = ([1] * width + [gap]) * per_line
    fig, axes = plt.subplots(lines, len(ratios) - 1, squeeze=False, gridspec_kw={"width_ratios": ratios[:-1]},
                             figsize=(CELL[0] * sum(ratios[:-1]), CELL[1] * lines + (0.3 if title else 0)))
    for ax in axes.ravel():
        ax.axis("off")
    for n, group in enumerate(groups):
        line, place = divmod(n, per_line)
        for ax, (array, caption, bold) in zip(axes[line, place * (width + 1):], group):
            ax.imshow(np.clip(array, 0, 255).astype(np.uint8))
            ax.set_title(caption, fontsize=7, fontweight="bold" if bold else "normal")
    if title:
        fig.suptitle(title, fontsize=9)
    save(fig, path)


def thumbnail(file, size):
    with Image.open(file) as image:
        return to_rgb(image).resize((size, size))
