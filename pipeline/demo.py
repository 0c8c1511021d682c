"""The demo: scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, no download) through the whole pipeline.

python -m pipeline.demo [FOLDER]   (default: demo)

Writes the digits to FOLDER/data/digits as PNGs, makes FOLDER a DVC project running this checkout's
code on params.yaml with the demo's own changes (DEMO_CHANGES), and runs `dvc repro` there. The
project's params.yaml stays as shipped, for photos.
"""
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from pipeline import workspace
from pipeline.cli import entry_point
from pipeline.files import atomic_path

SIZE = 64
# What the digits need that photos do not, as `dvc exp run -S` would change them. A mirrored 2 is no 2: no
# flips, no mirror-image TTA; and the scans are 8x8, so 64 px loses nothing and keeps the backbone fast. No augmented
# copies, and the shipped scratch CNN at that size too, for fewer epochs, to keep the demo quick.
DEMO_CHANGES = (
    f"backbone.input_size={SIZE}",
    "augment.copies=0",
    "augment.horizontal_flip=false",
    "evaluate.tta=false",
    f"scratch.scratch_cnn.input_size={SIZE}",
    "scratch.scratch_cnn.epochs=30",
    "scratch.scratch_cnn.patience=5",
)


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


def prepare_demo(folder):
    """FOLDER with the digits and a DVC project set up to run on them; returns the params it runs on."""
    images = Path(folder) / "data" / "digits"
    print(f"{write_digits(images)} digit images in {images}")
    params = workspace.merged_params(images, DEMO_CHANGES)
    workspace.prepare(folder, params)
    return params


@entry_point
def main(argv):
    folder = Path(argv[0] if argv else "demo")
    prepare_demo(folder)
    workspace.repro(folder)
    print(f"report: {folder / 'reports' / 'report.md'}")


if __name__ == "__main__":
    main()
