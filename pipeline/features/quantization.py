"""INT8 extraction: the backbone quantized by NNCF (post-training) on a few hundred of the user's own training images.

Quantizing needs images only to measure the range of each layer's activations, no labels. The images chosen
decide the quantized network, and so every feature it gives: the calibration set is named by its digest in the
features' provenance, and so in the per-image cache's key. It is drawn once, the COUNT training images with the
lowest sha256 (by content, not by name or order), and kept in a note under the cache for as long as every one
of them is still a training image: adding images later re-extracts nothing (a new draw would, nearly every time),
while deleting one of them, or moving it to a held-out split, draws a new set and extracts everything again.
"""
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.files import write_json

# Measured on the four shared datasets with 300 (benchmarks/results.md, run 7): CV within 0.33 points of fp32.
COUNT = 300


@dataclass(frozen=True)
class Calibration:
    """The images a network is quantized on: their sha256 keys and, in the same order, their files."""

    keys: tuple
    files: tuple

    def provenance(self):
        digest = hashlib.sha256("\n".join(sorted(self.keys)).encode()).hexdigest()[:16]
        return {"calibration_sha256": digest, "calibration_images": len(self.keys)}


def kept_or_drawn(note, keys, files, count=COUNT):
    """The Calibration for the training images `keys` (sha256; `files` theirs): the one `note` names if every
    image in it is still among them, else a new draw, written to `note` for the next run (None: no note)."""
    file_of = {}
    for key, file in zip(keys, files):
        file_of.setdefault(key, file)  # copies of one image: its first file
    kept = json.loads(Path(note).read_text())["keys"] if note and Path(note).is_file() else None
    if not kept or not set(kept) <= file_of.keys():
        kept = sorted(file_of)[:count]
        if note:
            write_json(note, {"keys": kept})
    return Calibration(tuple(kept), tuple(file_of[key] for key in kept))


def quantize(converted, images):
    """The OpenVINO model `converted` quantized to INT8 on `images`, preprocessed as the network reads them."""
    import nncf

    nncf.set_log_level(logging.ERROR)  # its progress bars stay: quantizing takes 15-45 s
    return nncf.quantize(converted, nncf.Dataset([image[None] for image in images]), subset_size=len(images))
