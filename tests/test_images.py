import numpy as np
import pytest
from PIL import Image

from pipeline.images import load_image, unreadable_reason


@pytest.mark.parametrize("mode, fmt", [
    ("RGB", "JPEG"), ("L", "PNG"), ("P", "GIF"), ("RGB", "BMP"), ("RGB", "TIFF"),
    ("RGB", "WEBP"), ("LA", "PNG"), ("RGBA", "PNG"),
])
def test_every_common_type_reads_as_rgb_at_the_asked_size(tmp_path, mode, fmt):
    path = tmp_path / f"image.{fmt.lower()}"
    Image.new(mode, (30, 20)).save(path, format=fmt)
    array = load_image(path, 48)
    assert array.shape == (48, 48, 3) and array.dtype == np.float32
    assert unreadable_reason(path) is None


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(path)
    assert (load_image(path, 8) == 255).all()


def test_greyscale_keeps_its_values_in_all_three_channels(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (8, 8), 77).save(path)
    assert (load_image(path, 8) == 77).all()


def test_a_truncated_jpeg_has_a_reason(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(path)
    path.write_bytes(path.read_bytes()[:400])
    assert "truncated" in unreadable_reason(path).lower()
