import keras
import numpy as np

from pipeline.networks import compile_classifier, output_layer, split_groups_for_stopping


def image_rows(labels, copies):
    """(row labels, row groups) for images with `copies` rows each, image-major as the caller fits them."""
    return np.repeat(labels, copies), np.repeat(np.arange(len(labels)), copies)


def test_whole_groups_go_to_one_side_stratified_by_class():
    y, groups = image_rows(np.repeat([0, 1, 2], [20, 20, 10]), copies=3)
    fit, stop = split_groups_for_stopping(y, groups, 0.2, seed=0)
    assert set(groups[fit]).isdisjoint(groups[stop])
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, stop])), np.arange(len(y)))
    stopped_images = np.unique(groups[stop])
    assert len(stopped_images) == 10  # a fifth of the 50 images, with all their rows
    assert len(stop) == 30
    np.testing.assert_array_equal(np.bincount(y[stopped_images * 3]), [4, 4, 2])


def test_rows_split_without_groups_puts_twins_on_both_sides():
    """Why groups exist: a row split of three copies per image watches twins of what it trains on."""
    y, groups = image_rows(np.repeat([0, 1], 20), copies=3)
    fit, stop = split_groups_for_stopping(y, None, 0.15, seed=0)
    assert len(stop) == 18 and np.bincount(y[stop]).tolist() == [9, 9]  # each row its own group
    assert set(groups[fit]) & set(groups[stop])


def test_group_labels_may_be_any_values_and_the_split_follows_the_seed():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1] * 5)
    groups = np.array([f"image{n // 2}" for n in range(len(y))])  # pairs of duplicates
    splits = [split_groups_for_stopping(y, groups, 0.25, seed) for seed in (0, 0, 1)]
    np.testing.assert_array_equal(splits[0][1], splits[1][1])
    assert not np.array_equal(splits[0][1], splits[2][1])
    assert set(groups[splits[2][0]]).isdisjoint(groups[splits[2][1]])


def test_too_few_groups_to_stratify_still_split():
    # Five images: 15% is one image, too few to hold one of each class.
    y, groups = image_rows(np.array([0, 0, 0, 1, 1]), copies=2)
    fit, stop = split_groups_for_stopping(y, groups, 0.15, seed=0)
    assert len(stop) == 2 and len(np.unique(groups[stop])) == 1
    assert set(groups[fit]).isdisjoint(groups[stop])


def test_a_duplicate_filed_under_two_classes_is_kept_whole():
    y = np.array([0, 1, 0, 0, 0, 1, 1, 1, 0, 1])
    groups = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])  # rows 0 and 1: one image, two labels
    for seed in range(5):
        fit, stop = split_groups_for_stopping(y, groups, 0.3, seed)
        assert {0, 1} <= set(fit) or {0, 1} <= set(stop)


def test_the_loss_matches_the_output_layer():
    for n_classes, loss in [(2, "binary_crossentropy"), (3, "sparse_categorical_crossentropy")]:
        model = keras.Sequential([keras.Input((4,)), output_layer(n_classes)])
        assert compile_classifier(model, n_classes, keras.optimizers.Adam()) is model
        assert model.loss == loss
        assert model.output_shape == (None, 1 if n_classes == 2 else n_classes)
