"""Find and read image files of any type Pillow knows, as RGB arrays for VGG16."""
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def files_under(folder):
    """Every file below `folder` but hidden ones (.DS_Store, .gitkeep), in a stable order."""
    return sorted(f for f in Path(folder).rglob("*") if f.is_file() and not f.name.startswith("."))


def unreadable(files):
    """{file: reason} for the files Pillow cannot decode, each named in a warning."""
    reasons = {}
    for file in files:
        reason = unreadable_reason(file)
        if reason:
            warnings.warn(f"skipping {file}: {reason}", stacklevel=2)
            reasons[file] = reason
    return reasons


def unreadable_reason(path):
    """None if Pillow decodes the whole image, else why it cannot."""
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # Pillow raises many types for bad files; all mean "skip"
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def load_image(path, size):
    """Read any Pillow image as a (size, size, 3) float32 RGB array in 0-255."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            # Transparent pixels become white, not the black of a plain RGB conversion.
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, "white")
            image.paste(rgba, mask=rgba.getchannel("A"))
        image = image.convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(image, dtype=np.float32)
