import numpy as np
import pytest
from PIL import Image, ImageOps

from pipeline.features import extraction
from pipeline.modeling.feature_pass import FeaturePass
from tests.conftest import make_tree


def test_a_heads_vectors_and_its_mirror_images_are_those_of_the_files(tmp_path, random_weights):
    files = sorted(make_tree(tmp_path / "images", per_class=2).rglob("*.png"))
    mirrors = []
    for file in files:
        with Image.open(file) as image:
            mirrors.append(tmp_path / f"mirror_{file.parent.name}_{file.name}")
            ImageOps.mirror(image).save(mirrors[-1])
    extractor = extraction.Extractor(str(random_weights), 32, "avg").load()
    intermediate = FeaturePass({**extractor.provenance(), "weights": str(random_weights)}, "intermediate")
    passes = {}
    X, flipped = intermediate(files, mirrored=True, passes=passes)
    assert X.shape == (4, 512) and len(passes) == 1
    np.testing.assert_allclose(flipped, intermediate(mirrors)[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(X, flipped)
    pooled = FeaturePass(intermediate.provenance, "pooled")
    assert pooled(files, mirrored=True, passes=passes)[0].shape == (4, 512) and len(passes) == 1  # the same pass


def test_a_model_of_int8_features_where_openvino_is_missing_says_what_to_install_in_one_line(tmp_path, monkeypatch):
    from pipeline import PipelineError
    from pipeline.features import engines

    files = sorted(make_tree(tmp_path / "images", per_class=1).rglob("*.png"))
    meta = {"backbone": "vgg16", "weights_sha256": "0" * 64, "input_size": 32, "pooling": "avg",
            "engine": "openvino", "precision": "int8", "weights": "imagenet"}
    monkeypatch.setattr(engines, "missing_modules", lambda engine: [engine])
    with pytest.raises(PipelineError) as error:
        FeaturePass(meta, networks={"vgg16": (b"", b"")})(files)
    assert str(error.value) == ("this model runs vgg16 quantized to int8 by OpenVINO but openvino is not installed: "
                                f"pip install {engines.INSTALL['openvino']}")
