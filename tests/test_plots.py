import numpy as np
import pandas as pd
from PIL import Image

from pipeline.report import plots
from tests.conftest import write_image

RED, BLUE = (220, 20, 20), (20, 20, 220)


def pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def share_of(colour, array):
    """The share of a figure's pixels within a few levels of `colour`."""
    return (np.abs(array - colour).max(axis=-1) < 12).mean()


def solid(colour, size=32):
    return np.broadcast_to(np.array(colour, dtype=np.float32), (size, size, 3))


def test_augmentation_preview_puts_each_image_beside_its_copies(tmp_path):
    path = tmp_path / "preview.png"
    images = [(solid(RED), f"image {n}", [(solid(BLUE), f"copy {c}") for c in range(4)]) for n in range(3)]
    plots.augmentation_preview(images, "preview", path)
    figure = pixels(path)
    # An image and four copies are five cells, so one image a line: three lines (and the title).
    assert figure.shape == (3 * 190 + 30, 5 * 170, 3)
    red, blue = share_of(RED, figure), share_of(BLUE, figure)
    assert red > 0.02 and 3.5 < blue / red < 4.5  # four copies to each image
    # The images are in the first column, their copies right of them.
    assert share_of(RED, figure[:, :170]) > 0.1 and share_of(RED, figure[:, 170:]) == 0


def test_augmentation_preview_fits_several_images_on_a_line_when_they_have_one_copy(tmp_path):
    path = tmp_path / "preview.png"
    plots.augmentation_preview([(solid(RED), str(n), [(solid(BLUE), "copy")]) for n in range(8)], "one copy", path)
    figure = pixels(path)
    assert figure.shape == (2 * 190 + 30, (8 + 3 * 0.3) * 170, 3)  # four (image, copy) pairs a line, gaps between
    first_gap = figure[:, 2 * 170:int(2.3 * 170)]
    assert share_of(RED, first_gap) == share_of(BLUE, first_gap) == 0


def test_confusion_matrix_grows_with_the_classes(tmp_path):
    two = pd.DataFrame({"actual": ["a", "b", "b"], "predicted": ["a", "b", "a"]})
    six = pd.DataFrame({"actual": list("abcdef"), "predicted": list("abcdff")})
    plots.confusion_matrix(two, ["a", "b"], "two", tmp_path / "two.png")
    plots.confusion_matrix(six, list("abcdef"), "six", tmp_path / "six.png")
    assert pixels(tmp_path / "two.png").shape[:2] == (350, 350)
    assert pixels(tmp_path / "six.png").shape[:2] == (550, 550)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["six.png", "two.png"]  # no temporary files left


def test_learning_curve_draws_a_panel_per_metric_recorded(tmp_path):
    loss = pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6]})
    plots.learning_curve(loss, "loss only", tmp_path / "loss.png")
    plots.learning_curve(loss.assign(accuracy=[0.5, 0.7, 0.9]), "both", tmp_path / "both.png")
    assert pixels(tmp_path / "loss.png").shape[:2] == (350, 500)
    assert pixels(tmp_path / "both.png").shape[:2] == (350, 1000)


def test_image_grid_wraps_and_reads_any_image(tmp_path):
    files = [write_image(tmp_path / f"{n}.png", RED, seed=n) for n in range(6)]
    grey16 = tmp_path / "grey16.png"  # 16-bit greyscale, as scanners and microscopes write
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(grey16)
    plots.image_grid(files + [grey16], [f"#{n}" for n in range(7)], "grid", tmp_path / "grid.png", columns=6)
    figure = pixels(tmp_path / "grid.png")
    assert figure.shape[:2] == (2 * 250, 6 * 220)  # seven images, six a row
    second_row = figure[250:, :220]
    assert second_row.std() > 20  # the 16-bit ramp shows as a ramp, not one flat colour


def test_image_groups_share_a_line_when_they_fit_and_never_split(tmp_path):
    a, b, c = (write_image(tmp_path / f"{n}.png", colour, seed=0) for n, colour in enumerate((RED, BLUE, RED)))
    plots.image_groups([[(a, "a"), (b, "b"), (c, "c")], [(a, "a")]], tmp_path / "two.png")
    assert pixels(tmp_path / "two.png").shape[:2] == (190, (3 + 0.3 + 3) * 170)  # both on one line
    plots.image_groups([[(a, "a"), (b, "b"), (c, "c")]] * 3, tmp_path / "three.png")
    assert pixels(tmp_path / "three.png").shape[:2] == (2 * 190, (3 + 0.3 + 3) * 170)  # a third group: a new line
