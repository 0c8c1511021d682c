import numpy as np
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
