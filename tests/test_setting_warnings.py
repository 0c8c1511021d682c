import numpy as np

from pipeline.report import setting_warnings
from tests.test_image_size import write_images


def arrows(n, seed, pointing):
    """n 16x16 images of a bar with a head at its left (pointing -1) or right (1) end, at random heights."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.2, (n, 16, 16))
    for image, direction in zip(images, pointing):
        row = rng.integers(3, 13)
        image[row, 2:14] = 1
        tip = 13 if direction > 0 else 2
        image[row - 2:row + 3, tip] = 1
    return images


def blobs(n, seed, classes):
    """n 16x16 images whose class is the brightness of a blob at a random place (mirroring keeps the class)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.2, (n, 16, 16))
    for image, label in zip(images, classes):
        row, column = rng.integers(2, 12, 2)
        image[row:row + 4, column:column + 4] = 0.5 + 0.5 * label
    return images


def settings(flips=True):
    return {"augment": {"horizontal_flip": flips}, "evaluate": {"tta": flips}}


def test_an_input_size_far_below_the_images_is_named_with_a_size_to_try(tmp_path):
    files = write_images(tmp_path, [(500, 375)] * 3 + [(640, 480)] * 2)
    [line] = setting_warnings.warnings(settings(flips=False), files, 64)
    assert "backbone.input_size is 64 px" in line and "375 px" in line and "backbone.input_size: 224" in line


def test_at_224_px_larger_images_raise_nothing_since_auto_would_choose_the_same(tmp_path):
    files = write_images(tmp_path, [(640, 480)] * 3)
    assert setting_warnings.warnings(settings(flips=False), files, 224) == []


def test_photos_a_little_larger_than_the_input_size_raise_nothing(tmp_path):
    files = write_images(tmp_path, [(200, 200)] * 5)
    assert setting_warnings.warnings(settings(flips=False), files, 150) == []


def test_flips_on_images_whose_mirror_image_is_another_class_are_named():
    y = np.arange(60) % 2
    images = arrows(60, seed=0, pointing=2 * y - 1)  # class 1 points right: its mirror image points left
    accuracy, mirrored_accuracy = setting_warnings.mirror_scores(images, images[:, :, ::-1], y)
    assert accuracy > 0.9 and mirrored_accuracy < 0.2
    line = setting_warnings.mirror_warning((accuracy, mirrored_accuracy))
    assert "augment.horizontal_flip: false" in line and "evaluate.tta: false" in line


def test_flips_on_images_that_keep_their_class_in_the_mirror_raise_nothing(tmp_path):
    y = np.arange(60) % 2
    images = blobs(60, seed=1, classes=y)
    files = write_images(tmp_path, [(160, 160)] * 3)
    assert setting_warnings.warnings(settings(), files, 150, (images, images[:, :, ::-1], y)) == []
    accuracy, mirrored_accuracy = setting_warnings.mirror_scores(images, images[:, :, ::-1], y)
    assert abs(accuracy - mirrored_accuracy) < setting_warnings.MIRROR_DROP


def test_the_flip_check_runs_where_flips_are_on_and_the_mirror_sample_was_extracted(tmp_path):
    y = np.arange(60) % 2
    images = arrows(60, seed=2, pointing=2 * y - 1)
    files = write_images(tmp_path, [(160, 160)] * 3)
    sample = (images, images[:, :, ::-1], y)
    [line] = setting_warnings.warnings(settings(flips=True), files, 150, sample)
    assert line.startswith("a model of the training images scores")
    assert setting_warnings.warnings(settings(flips=False), files, 150, sample) == []
    augment_only = {"augment": {"horizontal_flip": True}, "evaluate": {"tta": False}}  # no TTA: still checked
    assert len(setting_warnings.warnings(augment_only, files, 150, sample)) == 1
    assert setting_warnings.warnings(settings(flips=True), files, 150, None) == []  # no sample: nothing to compare


def test_a_class_too_small_to_fold_skips_the_check():
    images = arrows(6, seed=3, pointing=[1, 1, 1, 1, 1, -1])
    assert setting_warnings.mirror_scores(images, images[:, :, ::-1], np.array([0, 0, 0, 0, 0, 1])) is None


def test_a_large_class_more_than_three_times_the_smallest_names_class_weight_balanced(tmp_path):
    files = write_images(tmp_path, [(160, 160)] * 3)
    labels = ["dog"] * 700 + ["cat"] * 200 + ["bird"] * 210
    [line] = setting_warnings.warnings(settings(flips=False), files, 150, labels=labels)
    assert "dog (700 training images)" in line and "3.5x" in line and "cat (200)" in line
    assert "class_weight: balanced" in line
    assert setting_warnings.class_balance_warning(["dog"] * 600 + ["cat"] * 200) is None  # 3x: not more
    assert setting_warnings.warnings(settings(flips=False), files, 150) == []  # no labels: no check


def test_the_class_balance_warning_is_left_out_once_every_row_sets_class_weight():
    labels = ["dog"] * 10 + ["cat"] * 2
    rows = {"heads": {"logreg": {"type": "logreg", "class_weight": "balanced"}},
            "finetune": {}, "scratch": {"scratch_cnn": {"epochs": 5}}}
    assert "class_weight: balanced" in setting_warnings.class_balance_warning(labels, rows)
    rows["scratch"]["scratch_cnn"]["class_weight"] = "balanced"
    assert setting_warnings.class_balance_warning(labels, rows) is None
