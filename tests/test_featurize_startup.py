"""The features stage when nothing or little is new: no TensorFlow when every image is cached, nor when a few
images are new (the engine's converted model reused from the cache, their augmented copies warped in NumPy)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import paths
from pipeline.features import engines, store
from tests.conftest import make_tree, write_image
from tests.test_stages import tiny_params

PROJECT = Path(__file__).resolve().parents[1]
# Runs the stage in a fresh interpreter and says which of the heavy modules it loaded.
ENV = {**os.environ, "PYTHONPATH": str(PROJECT)}
RUN = ("import sys; from pipeline.stages import featurize; featurize.main([]); "
       "print('loaded:', *sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")


def featurize(project):
    """What the stage loaded, in a process of its own (this one has TensorFlow already)."""
    done = subprocess.run([sys.executable, "-c", RUN], cwd=project, capture_output=True, text=True,
                          env=ENV, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].split()[1:]


@pytest.fixture
def project(tmp_path, random_weights):
    images = make_tree(tmp_path / "images", splits=("train", "test"), per_class=3)
    params = tiny_params(images, random_weights)
    params["backbone"]["engine"] = "openvino" if not engines.missing_modules("openvino") else "keras"
    (tmp_path / "project").mkdir()
    (tmp_path / "project/params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path / "project"


def prepare(project):
    subprocess.run([sys.executable, "-m", "pipeline.stages.prepare"], cwd=project, capture_output=True, check=True,
                   env=ENV)


def test_a_run_with_every_image_cached_loads_no_tensorflow(project):
    prepare(project)
    assert featurize(project) == ["keras", "tensorflow"]  # the first run builds the network
    first = store.read(project / paths.features_file("train"))
    assert featurize(project) == []
    again = store.read(project / paths.features_file("train"))
    assert (again.X == first.X).all() and again.meta["feature_width"] == first.meta["feature_width"] == 512
    assert int(again.meta["extracted"]) == 0 and again.meta["weights_sha256"] == first.meta["weights_sha256"]


@pytest.mark.skipif(bool(engines.missing_modules("openvino")), reason="needs OpenVINO")
def test_new_images_run_the_engine_model_saved_beside_the_cache(project):
    prepare(project)
    featurize(project)
    saved = sorted((project / paths.CACHE / "engines").iterdir())
    assert [path.suffix for path in saved] == [".bin", ".xml"]
    written = saved[0].stat().st_mtime_ns
    images = Path(yaml.safe_load((project / "params.yaml").read_text())["data"]["dir"])
    write_image(images / "train/red/new.png", (200, 40, 40), seed=99)
    prepare(project)
    assert featurize(project) == []
    train = store.read(project / paths.features_file("train"))
    assert int(train.meta["extracted"]) == 1 and len(train.y) == 7 and train.augmented.shape[1] == 1
    assert saved[0].stat().st_mtime_ns == written  # converted once
