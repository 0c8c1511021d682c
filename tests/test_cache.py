import numpy as np
import pytest

from pipeline.features import extraction
from pipeline.features.backbone import INTERMEDIATE
from pipeline.features.cache import FeatureCache

PROVENANCE = {"weights_sha256": "abc", "input_size": 32}


def arrays(keys, intermediate=INTERMEDIATE):
    values = np.array([[int(k)] * 3 for k in keys], dtype=np.float32)
    return {"features": values, intermediate: values[:, :, None]}


def test_shards_are_found_by_key_in_any_order(tmp_path):
    cache = FeatureCache(tmp_path, PROVENANCE)
    cache.add("image", ["1", "2"], arrays(["1", "2"]))
    cache.add("image", ["3"], arrays(["3"]))
    assert cache.missing("image", ["3", "4", "1", "4"]) == ["4"]
    assert cache.missing("flipped", ["1"]) == ["1"]
    gathered = list(cache.gather("image", ["3", "1", "2"], chunk=2))
    assert [len(g["features"]) for g in gathered] == [2, 1]
    np.testing.assert_array_equal(np.concatenate([g["features"] for g in gathered])[:, 0], [3, 1, 2])
    assert gathered[0][INTERMEDIATE].shape == (2, 3, 1)
    assert (cache.dir / "provenance.json").exists()


def test_a_chunk_read_in_one_span_per_shard_keeps_the_order_asked_and_repeats(tmp_path):
    cache = FeatureCache(tmp_path, PROVENANCE)
    cache.add("image", ["1", "2", "3", "4"], arrays(["1", "2", "3", "4"]))
    cache.add("image", ["5", "6"], arrays(["5", "6"]))
    keys = ["4", "6", "2", "4", "1", "5"]  # backwards, skipping rows, a key twice, the shards interleaved
    (gathered,) = cache.gather("image", keys)
    np.testing.assert_array_equal(gathered["features"], arrays(keys)["features"])
    np.testing.assert_array_equal(gathered[INTERMEDIATE], arrays(keys)[INTERMEDIATE])


def test_other_provenance_is_another_cache(tmp_path):
    FeatureCache(tmp_path, PROVENANCE).add("image", ["1"], arrays(["1"]))
    assert FeatureCache(tmp_path, {**PROVENANCE, "input_size": 64}).missing("image", ["1"]) == ["1"]
    assert FeatureCache(tmp_path, dict(reversed(PROVENANCE.items()))).missing("image", ["1"]) == []


def test_each_backbone_has_its_own_cache(tmp_path):
    """The provenance names the backbone: another network's arrays are never served for the same image."""
    vgg16 = FeatureCache(tmp_path, {**PROVENANCE, "backbone": "vgg16"})
    vgg16.add("image", ["1"], arrays(["1"]))
    resnet = FeatureCache(tmp_path, {**PROVENANCE, "backbone": "resnet50v2"})
    assert resnet.dir != vgg16.dir and resnet.missing("image", ["1"]) == ["1"]
    assert vgg16.missing("image", ["1"]) == []


def test_rows_join_the_views_under_their_suffixes(tmp_path):
    cache = FeatureCache(tmp_path, PROVENANCE)
    cache.add("image", ["1", "2"], arrays(["1", "2"]))
    cache.add("flipped", ["2", "1"], arrays(["20", "10"]))
    (rows,) = cache.rows([extraction.IMAGE, extraction.FLIPPED], ["1", "2"])
    assert sorted(rows) == ["features", "features_flipped", INTERMEDIATE, f"{INTERMEDIATE}_flipped"]
    np.testing.assert_array_equal(rows["features_flipped"][:, 0], [10, 20])


def test_shards_written_under_the_old_name_of_the_intermediate_output_are_read_under_the_new(tmp_path):
    """Images cached before the rename are not extracted again: block4_pool comes back as intermediate."""
    cache = FeatureCache(tmp_path, PROVENANCE)
    cache.add("image", ["1"], arrays(["1"], intermediate="block4_pool"))
    cache.add("image", ["2"], arrays(["2"]))
    (gathered,) = cache.gather("image", ["1", "2"])
    assert sorted(gathered) == ["features", INTERMEDIATE]
    np.testing.assert_array_equal(gathered[INTERMEDIATE][:, 0, 0], [1, 2])


def test_an_unreadable_shard_is_skipped_with_a_warning(tmp_path):
    cache = FeatureCache(tmp_path, PROVENANCE)
    cache.add("image", ["1"], arrays(["1"]))
    (cache.dir / "image" / "broken.h5").write_bytes(b"not hdf5")
    with pytest.warns(UserWarning, match="broken.h5"):
        assert cache.missing("image", ["1", "2"]) == ["2"]
