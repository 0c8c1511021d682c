import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from pipeline import demo
from pipeline.config import load_params
from pipeline.data import catalog

PROJECT = Path(__file__).resolve().parents[1]
SIZE = 16  # the demo writes 64 px; a small size keeps the test quick and shows `size` is honoured


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "digits"
    return folder, demo.write_digits(folder, size=SIZE)


def test_every_scan_becomes_an_image_in_its_digits_folder(digits):
    folder, count = digits
    truth = load_digits()
    assert count == len(truth.target) == 1797
    manifest, skipped = catalog.find_images(folder)  # the layout prepare reads: DIR/<class>/<image>
    assert skipped.empty and len(manifest) == count
    assert catalog.class_names(manifest) == [str(d) for d in range(10)]
    assert manifest["label"].value_counts().sort_index().tolist() == np.bincount(truth.target).tolist()


def test_an_image_is_its_scan_enlarged_in_grey(digits):
    folder, _ = digits
    truth = load_digits()
    for index in (0, 1000, 1796):
        with Image.open(folder / str(truth.target[index]) / f"{index:04d}.png") as image:
            assert image.mode == "L" and image.size == (SIZE, SIZE)
            back = np.asarray(image.resize((8, 8), Image.BOX), dtype=float)
        scan = truth.images[index] * 255 / 16
        assert np.corrcoef(back.ravel(), scan.ravel())[0, 1] > 0.9


def test_a_second_run_writes_only_what_is_missing(digits):
    folder, count = digits
    kept, removed = folder / "0/0000.png", folder / "1/0001.png"
    kept.write_bytes(b"left alone")
    removed.unlink()
    assert demo.write_digits(folder, size=SIZE) == count
    assert kept.read_bytes() == b"left alone"
    with Image.open(removed) as image:
        assert image.size == (SIZE, SIZE)


def test_the_demo_project_runs_on_the_digits_with_the_demos_settings(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "write_digits", functools.partial(demo.write_digits, size=SIZE))  # quicker
    params = demo.prepare_demo(tmp_path / "demo")  # everything `make demo` does but `dvc repro`
    assert "1797 digit images in" in capsys.readouterr().out
    assert load_params(tmp_path / "demo/params.yaml") == params  # a params.yaml the stages accept
    assert Path(params["data"]["dir"]) == (tmp_path / "demo/data/digits").resolve()
    assert params["backbone"]["input_size"] == demo.SIZE
    assert not params["augment"]["horizontal_flip"] and not params["evaluate"]["tta"]  # a mirrored 2 is no 2
    shipped = load_params(PROJECT / "params.yaml")
    assert params["scratch"]["scratch_cnn"] == {**shipped["scratch"]["scratch_cnn"], "input_size": demo.SIZE,
                                                "epochs": 30, "patience": 5}
    assert params["heads"] == shipped["heads"]  # only what the demo changes differs from the shipped settings
    assert load_params(PROJECT / "params.yaml")["backbone"]["input_size"] != demo.SIZE  # the project's: photos
