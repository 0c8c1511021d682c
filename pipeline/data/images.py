"""Find and read image files of any type Pillow knows, as RGB arrays for the networks."""
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Greyscale modes wider than 8 bits: 16-bit PNG / TIFF, 32-bit integer and float TIFF. Their values
# mean nothing fixed (a 12-bit sensor, a float in 0-1), and a plain RGB conversion clips them.
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def files_under(folder):
    """Every file below `folder` but hidden ones (.DS_Store, .gitkeep), in a stable order.

    Linked folders are followed, each real folder once (a link to a parent would loop), and
    their files are given as seen through the link. A broken link is listed, so that it is
    reported as unreadable rather than silently missing.
    """
    files, seen = [], set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        status = os.stat(top)
        if (status.st_dev, status.st_ino) in seen:
            dirs.clear()
            continue
        seen.add((status.st_dev, status.st_ino))
        paths = (Path(top, name) for name in names if not name.startswith("."))
        files += [path for path in paths if path.is_file() or not path.exists()]
    return sorted(files)


def printable(path):
    """`path` as text that can be printed and written anywhere: undecodable bytes as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def unreadable(files):
    """{file: reason} for the files that cannot be used, each named in a warning."""
    reasons = {}
    for file in files:
        reason = unreadable_reason(file)
        if reason:
            warnings.warn(f"skipping {printable(file)}: {reason}", stacklevel=2)
            reasons[file] = reason
    return reasons


def unreadable_reason(path):
    """None if the path can be recorded and Pillow decodes the whole image, else why not."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "its path is not valid UTF-8, so it cannot be written to a CSV file: rename it (or its folder)"
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # Pillow raises many types for bad files; all mean "skip"
        return f"Pillow cannot read it ({type(exc).__name__}: {exc}): convert it to PNG or JPEG, or move it elsewhere"
    return None


def to_rgb(image):
    """An open Pillow image as an upright RGB image: transparency white, wide greys stretched to 0-255."""
    image = ImageOps.exif_transpose(image)
    if image.mode in HIGH_DEPTH_MODES:
        image = stretched_to_8_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent pixels become white, not the black of a plain RGB conversion.
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    return image.convert("RGB")


def stretched_to_8_bit(image):
    """A greyscale image with this image's own [min, max] mapped to [0, 255] (a flat image is black)."""
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]  # float TIFFs mark missing pixels with NaN
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.nan_to_num(np.clip(scaled, 0, 255)).round().astype(np.uint8))


def load_image(path, size):
    """Read any Pillow image as a (size, size, 3) float32 RGB array in 0-255."""
    with Image.open(path) as image:
        image = to_rgb(image).resize((size, size), Image.BILINEAR)
        return np.asarray(image, dtype=np.float32)


def load_images(files, size):
    """(n, size, size, 3) uint8: a quarter of float32's memory for a whole training set."""
    return np.stack([load_image(f, size).astype(np.uint8) for f in files])
