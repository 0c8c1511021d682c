import warnings

import numpy as np
import pytest
from PIL import Image

from pipeline.data.images import load_image, to_rgb, unreadable_reason


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


def gradient(low, high, dtype):
    """A 32x32 image whose columns run from `low` to `high`, and the 0-255 ramp it should load as."""
    ramp = np.linspace(low, high, 32)
    expected = np.broadcast_to(np.linspace(0, 255, 32), (32, 32))
    return np.tile(ramp, (32, 1)).astype(dtype), expected


@pytest.mark.parametrize("name, mode, as_image", [
    ("grey.png", "I;16", lambda values: Image.fromarray(values.astype(np.uint16))),
    ("grey.tif", "I;16B", lambda values: Image.frombytes("I;16B", values.shape, values.astype(">u2").tobytes())),
    ("grey.tif", "I", lambda values: Image.fromarray(values.astype(np.int32))),
])
def test_wide_integer_greys_are_stretched_not_clipped_to_white(tmp_path, name, mode, as_image):
    values, expected = gradient(0, 4000, np.uint16)
    as_image(values).save(tmp_path / name)
    with Image.open(tmp_path / name) as image:
        assert image.mode == mode
    assert np.allclose(load_image(tmp_path / name, 32), expected[..., None], atol=1)


def test_a_float_tiff_in_0_to_1_is_stretched_not_clipped_to_black(tmp_path):
    values, expected = gradient(0.0, 1.0, np.float32)
    Image.fromarray(values).save(tmp_path / "float.tif")
    assert np.allclose(load_image(tmp_path / "float.tif", 32), expected[..., None], atol=1)


def test_missing_float_pixels_are_black_and_leave_the_rest_stretched(tmp_path):
    values, expected = gradient(0.0, 1.0, np.float32)
    values[0, 0] = values[0, 1] = np.nan
    Image.fromarray(values).save(tmp_path / "holes.tif")
    array = load_image(tmp_path / "holes.tif", 32)
    assert (array[0, :2] == 0).all()
    assert np.allclose(array[1:], expected[1:, :, None], atol=1)


def test_a_flat_16_bit_image_loads_as_black_without_dividing_by_zero(tmp_path):
    Image.fromarray(np.full((8, 8), 1000, np.uint16)).save(tmp_path / "flat.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (load_image(tmp_path / "flat.png", 8) == 0).all()


def test_to_rgb_gives_an_rgb_image_for_thumbnails_of_wide_greys(tmp_path):
    values, expected = gradient(0, 4000, np.uint16)
    Image.fromarray(values).save(tmp_path / "grey.png")
    with Image.open(tmp_path / "grey.png") as image:
        rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert np.allclose(np.asarray(rgb), expected[..., None], atol=1)
