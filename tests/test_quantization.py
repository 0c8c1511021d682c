import hashlib
import json

import numpy as np
import pytest
from conftest import shared_setting

from pipeline import PipelineError
from pipeline.features import backbone, engines, extraction, quantization
from tests.conftest import make_tree

SIZE = 48


def test_the_calibration_set_is_the_lowest_hashes_and_is_kept_while_all_its_images_are_training_images(tmp_path):
    note = tmp_path / "note.json"
    keys = [f"{n:02d}" for n in (50, 10, 40, 30, 20, 10)]  # 10 twice: one image in two files
    files = [f"{key}-{n}.png" for n, key in enumerate(keys)]
    drawn = quantization.kept_or_drawn(note, keys, files, count=3)
    assert drawn.keys == ("10", "20", "30") and drawn.files == ("10-1.png", "20-4.png", "30-3.png")
    assert json.loads(note.read_text())["keys"] == ["10", "20", "30"]
    # new images, even with lower hashes, keep it: a new draw would re-extract everything
    assert quantization.kept_or_drawn(note, ["05", "01", *keys], ["a", "b", *files], count=3) == drawn
    # one of its images no longer a training image: drawn again from those that are
    remaining = [(key, file) for key, file in zip(keys, files) if key != "30"] + [("45", "c")]
    redrawn = quantization.kept_or_drawn(note, *zip(*remaining), count=3)
    assert redrawn.keys == ("10", "20", "40") and json.loads(note.read_text())["keys"] == ["10", "20", "40"]
    assert redrawn.provenance()["calibration_sha256"] != drawn.provenance()["calibration_sha256"]
    assert quantization.kept_or_drawn(None, keys, files, count=3) == drawn  # no note: drawn, nothing written


def test_the_calibration_digest_names_the_images_not_their_order():
    one = quantization.Calibration(("a", "b"), ("a.png", "b.png"))
    assert one.provenance() == quantization.Calibration(("b", "a"), ("x.png", "y.png")).provenance()
    assert one.provenance()["calibration_images"] == 2


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """(keys, files) of a few small images to calibrate on."""
    files = sorted(make_tree(tmp_path_factory.mktemp("images"), per_class=4).rglob("*.png"))
    return [hashlib.sha256(f.read_bytes()).hexdigest() for f in files], files


def cosines(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_an_int8_network_is_quantized_once_per_calibration_set_and_travels_as_bytes(training, tmp_path, monkeypatch):
    try:
        engines.resolve("openvino", "int8")
    except PipelineError as cannot_run_here:
        pytest.skip(str(cannot_run_here))
    weights = str(shared_setting(backbone.WEIGHTS_ENV))  # real weights: random ones quantize to near-zero features
    keys, files = training

    def extractor(precision, cache_root=None):
        return extraction.Extractor(weights, SIZE, "avg", "openvino", precision, cache_root=cache_root)

    with pytest.raises(ValueError, match="call calibrated"):
        extractor("int8").provenance()
    int8 = extractor("int8", tmp_path).calibrated(keys, files)
    got = extraction.arrays(int8.load(), extraction.IMAGE, files, keys, 4)
    expected = extraction.arrays(extractor("fp32").load(), extraction.IMAGE, files, keys, 4)
    for name in ("features", backbone.INTERMEDIATE):
        assert got[name].shape == expected[name].shape and cosines(got[name], expected[name]).min() > 0.99
    # Kept: a later run (a new image among the training ones) loads the saved network, building nothing.
    monkeypatch.setattr(backbone, "conv_base", lambda *args: pytest.fail("built the network again"))
    later = extractor("int8", tmp_path).calibrated([*keys, "f" * 64], [*files, files[0]])
    assert later.provenance() == int8.provenance()
    again = extraction.arrays(later.load(), extraction.IMAGE, files, keys, 4)
    network = later.saved_network()
    alone = extraction.quantized(network, SIZE, "avg", "vgg16").load()  # what predict runs
    for name, array in got.items():
        np.testing.assert_array_equal(again[name], array)
        np.testing.assert_array_equal(extraction.arrays(alone, extraction.IMAGE, files, keys, 4)[name], array)
    # Another calibration set is another network, in its own file
    monkeypatch.undo()
    other = extractor("int8", tmp_path).calibrated(keys[:3], files[:3])
    assert other.provenance()["calibration_sha256"] != int8.provenance()["calibration_sha256"]
    assert other.saved_network()[1] != network[1]
