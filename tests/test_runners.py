import hashlib
import os
import shutil

import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.data import augment
from pipeline.data.images import load_image
from pipeline.features import extraction, runners
from pipeline.features.cache import FeatureCache
from tests.conftest import make_tree, write_image

AUGMENT = {"rotation": 0.05, "width_shift": 0.1, "height_shift": 0, "shear": 0, "zoom": 0, "horizontal_flip": True}


@pytest.fixture(scope="module")
def extractor(random_weights):
    return extraction.Extractor(str(random_weights), 32, "avg").load()


@pytest.fixture(scope="module")
def other(random_weights):
    """A second backbone (its features pooled another way), as a fusion of two has."""
    return extraction.Extractor(str(random_weights), 32, "max").load()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract(extractor, cache, files, views=(extraction.IMAGE,), runner="local", keys=None):
    """Fill the cache for `files`; returns (images computed, their features in order)."""
    keys = keys or [sha256(f) for f in files]
    computed = runners.extract(runner, [(extractor, cache)], list(views), files, keys, batch_size=3)
    return computed, np.concatenate([rows["features"] for rows in cache.rows(list(views), keys)])


def test_only_new_images_are_computed_and_moved_ones_are_found_by_content(tmp_path, extractor):
    files = sorted(make_tree(tmp_path / "images", per_class=4).rglob("*.png"))
    cache = FeatureCache(tmp_path / "cache", extractor.provenance())
    computed, first = extract(extractor, cache, files)
    assert computed == 8
    added = write_image(tmp_path / "images" / "train" / "red" / "new.png", (200, 40, 40), seed=99)
    computed, second = extract(extractor, cache, files + [added])
    assert computed == 1
    np.testing.assert_array_equal(second[:8], first)
    moved = shutil.move(files[0], tmp_path / "moved.png")
    computed, third = extract(extractor, cache, [moved] + files[2:])  # one renamed, one removed
    assert computed == 0 and len(third) == 7
    np.testing.assert_array_equal(third, first[[0, *range(2, 8)]])


def test_a_changed_setting_computes_what_it_changes(tmp_path, extractor, random_weights):
    files = sorted(make_tree(tmp_path / "images", per_class=2).rglob("*.png"))
    cache = FeatureCache(tmp_path / "cache", extractor.provenance())
    copies = extraction.View("_augmented", augment.Copies(AUGMENT, count=1, seed=0))
    assert extract(extractor, cache, files, [extraction.IMAGE, copies])[0] == 4
    shards = set(cache.shards("image"))
    other_seed = extraction.View("_augmented", augment.Copies(AUGMENT, count=1, seed=1))
    assert extract(extractor, cache, files, [extraction.IMAGE, other_seed])[0] == 4
    assert set(cache.shards("image")) == shards  # the images themselves were not recomputed
    bigger = extraction.Extractor(str(random_weights), 48, "avg").load()
    assert extract(bigger, FeatureCache(tmp_path / "cache", bigger.provenance()), files)[0] == 4


def test_an_interrupted_extraction_resumes_without_recomputing_finished_shards(tmp_path, extractor, monkeypatch):
    monkeypatch.setattr(runners, "SHARD_IMAGES", 3)
    files = sorted(make_tree(tmp_path / "images", per_class=4).rglob("*.png"))
    cache = FeatureCache(tmp_path / "cache", extractor.provenance())
    keys, kept = [sha256(f) for f in files], files[7].read_bytes()
    files[7].unlink()  # vanishes mid-run: the third shard fails
    with pytest.raises(FileNotFoundError):
        extract(extractor, cache, files, keys=keys)
    assert len(cache.shards("image")) == 2
    assert not list((cache.dir / "image").glob(".*"))  # no half-written shard left behind
    files[7].write_bytes(kept)
    computed, resumed = extract(extractor, cache, files)
    assert computed == 2
    fresh = FeatureCache(tmp_path / "fresh", extractor.provenance())
    np.testing.assert_array_equal(resumed, extract(extractor, fresh, files)[1])


def test_each_image_is_decoded_once_for_every_backbone_and_view(tmp_path, extractor, other, monkeypatch):
    files = sorted(make_tree(tmp_path / "images", per_class=3).rglob("*.png"))
    keys = [sha256(f) for f in files]
    views = extraction.views(augment.Copies(AUGMENT, count=1, seed=0), mirrored=True)
    backbones = [(each, FeatureCache(tmp_path / "cache", each.provenance())) for each in (extractor, other)]
    decoded = []
    monkeypatch.setattr(extraction, "load_image", lambda file, size: decoded.append(file) or load_image(file, size))
    assert runners.extract("local", backbones, views, files, keys, batch_size=4) == 6
    assert sorted(decoded) == files
    for each, cache in backbones:
        from_files = extraction.arrays(each, extraction.FLIPPED, files, keys, batch_size=4)  # decoded on their own
        np.testing.assert_array_equal(np.concatenate([rows["features_flipped"] for rows in cache.rows(views, keys)]),
                                      from_files["features"])
    # The second backbone's mirror images lost: only they are computed, and the images decoded once more.
    shutil.rmtree(backbones[1][1].dir / "flipped")
    kept = set(backbones[0][1].dir.rglob("*.h5"))
    decoded.clear()
    assert runners.extract("local", backbones, views, files, keys, batch_size=4) == 6
    assert sorted(decoded) == files and set(backbones[0][1].dir.rglob("*.h5")) == kept
    assert runners.extract("local", backbones, views, files, keys, batch_size=4) == 0


def test_an_unknown_runner_is_named():
    with pytest.raises(PipelineError, match="backbone.runner is 'spark'; use one of local, ray"):
        runners.check("spark")


@pytest.fixture
def local_ray():
    """A Ray cluster of 2 CPUs on this machine (CI installs the extra: pip install .[ray])."""
    ray = pytest.importorskip("ray", exc_type=ImportError) if not os.environ.get("CI") else __import__("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def test_the_ray_runner_writes_what_the_local_one_does(tmp_path, extractor, other, local_ray, monkeypatch):
    monkeypatch.setattr(runners, "SHARD_IMAGES", 3)  # several shards, so several tasks
    files = sorted(make_tree(tmp_path / "images", per_class=4).rglob("*.png"))
    keys = [sha256(f) for f in files]
    views = extraction.views(augment.Copies(AUGMENT, count=2, seed=0), mirrored=True)
    for name in ("local", "ray"):
        backbones = [(each, FeatureCache(tmp_path / name, each.provenance())) for each in (extractor, other)]
        assert runners.extract(name, backbones, views, files, keys, batch_size=2) == 8
    for each in (extractor, other):
        local, remote = (FeatureCache(tmp_path / name, each.provenance()) for name in ("local", "ray"))
        assert len(remote.shards("image")) == 3
        for ours, theirs in zip(local.rows(views, keys), remote.rows(views, keys)):
            assert sorted(ours) == sorted(theirs)
            for name in ours:
                np.testing.assert_array_equal(ours[name], theirs[name])
