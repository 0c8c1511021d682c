import hashlib
import shutil

import numpy as np
import pytest

from pipeline.data import augment
from pipeline.features import backbone, extraction
from tests.conftest import make_tree

FLIP_ONLY = {"rotation": 0, "width_shift": 0, "height_shift": 0, "shear": 0, "zoom": 0, "horizontal_flip": True}
AUGMENT = {**FLIP_ONLY, "rotation": 0.05, "width_shift": 0.1, "height_shift": 0.1, "shear": 0.1, "zoom": 0.1}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def extractor(random_weights):
    return extraction.Extractor(str(random_weights), 32, "avg").load()


def run(extractor, view, files, batch_size):
    parts = [arrays for _, arrays in extraction.batches(extractor, view, files, [sha256(f) for f in files], batch_size)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def test_provenance_names_what_decides_the_numbers(extractor, random_weights):
    meta = extractor.provenance()
    assert meta["weights_sha256"] == backbone.weights_digest(backbone.conv_base(str(random_weights), 32))
    assert (meta["input_size"], meta["pooling"], meta["engine"], meta["precision"]) == (32, "avg", "keras", "fp32")
    assert meta["preprocessing"].startswith("keras.applications.vgg16.preprocess_input")


def test_the_provenance_needs_no_loaded_network(extractor, random_weights, tmp_path):
    unloaded = extraction.Extractor(str(random_weights), 32, "avg", cache_root=tmp_path)
    assert unloaded.provenance() == extractor.provenance() and not hasattr(unloaded, "run_")


def test_vgg16_provenance_is_what_it_was_before_the_registry(extractor):
    """Its keys and texts decide the per-image cache's folder: unchanged, VGG16 features cached before stay valid."""
    meta = extractor.provenance()
    assert list(meta) == ["backbone", "weights_sha256", "input_size", "pooling", "engine", "precision",
                          "engine_version", "preprocessing", "extraction_version"]
    assert meta["backbone"] == "vgg16" and meta["extraction_version"] == 1
    assert meta["preprocessing"] == "keras.applications.vgg16.preprocess_input (RGB to BGR, ImageNet mean subtracted)"


def test_batches_stream_and_give_the_numbers_of_one_pass(tmp_path, extractor):
    files = sorted(make_tree(tmp_path / "images", per_class=5).rglob("*.png"))
    streamed = list(extraction.batches(extractor, extraction.IMAGE, files, list(range(10)), batch_size=4))
    assert [len(keys) for keys, _ in streamed] == [4, 4, 2]
    first = streamed[0][1]
    assert first["features"].shape == (4, 512) and first[backbone.INTERMEDIATE].shape == (4, 2, 2, 512)
    whole = run(extractor, extraction.IMAGE, files, batch_size=10)["features"]
    np.testing.assert_allclose(np.concatenate([a["features"] for _, a in streamed]), whole, rtol=1e-4, atol=1e-4)


def test_with_only_the_flip_on_the_copies_are_the_mirror_image_then_the_image(tmp_path, extractor):
    files = sorted(make_tree(tmp_path / "images", per_class=2).rglob("*.png"))
    copies = extraction.views(augment.Copies(FLIP_ONLY, count=2, seed=0), mirrored=True)
    assert [view.suffix for view in copies] == ["", "_augmented", "_flipped"]
    image, augmented, flipped = (run(extractor, view, files, 3) for view in copies)
    assert augmented["features"].shape == (4, 2, 512) and augmented[backbone.INTERMEDIATE].shape == (4, 2, 2, 2, 512)
    np.testing.assert_allclose(augmented["features"][:, 0], flipped["features"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(augmented["features"][:, 1], image["features"], rtol=1e-4, atol=1e-4)


def test_copies_depend_on_the_seed_and_each_image_not_on_batches_order_or_names(tmp_path, extractor):
    files = sorted(make_tree(tmp_path / "images", per_class=3).rglob("*.png"))

    def augmented(files, batch_size, seed=0):
        view = extraction.View("_augmented", augment.Copies(AUGMENT, count=2, seed=seed))
        return run(extractor, view, files, batch_size)["features"]

    by_four = augmented(files, batch_size=4)
    np.testing.assert_allclose(augmented(files[::-1], batch_size=2)[::-1], by_four, rtol=1e-4, atol=1e-4)
    renamed = shutil.copy(files[0], tmp_path / "elsewhere.png")
    np.testing.assert_allclose(augmented([renamed], batch_size=1)[0], by_four[0], rtol=1e-4, atol=1e-4)
    assert not np.allclose(augmented(files, batch_size=4, seed=1), by_four, rtol=1e-4, atol=1e-4)


def test_each_view_has_its_own_name_in_the_cache_and_copies_name_their_settings():
    def copies_id(**change):
        return extraction.View("_augmented", augment.Copies({**AUGMENT, **change}, count=2, seed=0)).id

    assert (extraction.IMAGE.id, extraction.FLIPPED.id) == ("image", "flipped")
    assert copies_id() == copies_id() != copies_id(zoom=0.2)
    assert copies_id().startswith("augmented-")
    assert extraction.views(augment.Copies(AUGMENT, count=0, seed=0)) == [extraction.IMAGE]
