"""Write scikit-learn's bundled handwritten digits as an image folder: a real dataset with no download.

python -m pipeline.demo data/digits  ->  data/digits/<digit>/<index>.png, 1,797 greyscale images
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from pipeline.files import atomic_path

SIZE = 64


def write_digits(folder, size=SIZE):
    digits = load_digits()
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        path = Path(folder) / str(label) / f"{index:04d}.png"
        if path.exists():
            continue
        grey = Image.fromarray((pixels * (255 / 16)).astype(np.uint8), mode="L")
        with atomic_path(path) as tmp:
            grey.resize((size, size), Image.BILINEAR).save(tmp, format="PNG")
    return len(digits.target)


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else "data/digits"
    print(f"{write_digits(folder)} digit images in {folder}")
