"""The same image in two places of a dataset: byte-identical files and resized or re-encoded copies.

A copy of a training image among the held-out images inflates the held-out score, copies in two
cross-validation folds inflate CV, and one image under two labels is a labelling error. Near
copies are found with a 256-bit perceptual hash (imagehash's phash on a 16x16 DCT): on the shared
datasets it keeps resized, re-encoded and brightened copies closer together than any two different
images, which the 64-bit phash does not for brain MRI slices (benchmarks/results.md, figures behind
the code).
"""
import hashlib
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline import PipelineError
from pipeline.data.images import to_rgb
from pipeline.files import read_table

HASH_SIZE = 16  # phash keeps HASH_SIZE x HASH_SIZE low-frequency DCT signs: 256 bits
HASH_BITS = HASH_SIZE * HASH_SIZE
HASH_WORDS = HASH_BITS // 64
# Between the farthest a copy moved and the closest two different images came on the shared datasets
# (README, params.yaml table), with room for a re-coloured copy.
DEFAULT_MAX_DISTANCE = 30
BLOCK = 256  # rows of the pairwise comparison at once: BLOCK x images x 32 bytes in memory
CHUNK = 1 << 20


def content_hash(path):
    """The sha256 hex digest of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def perceptual_hash(path):
    """The image's phash as HASH_WORDS uint64 words, decoded upright as the pipeline sees it."""
    with Image.open(path) as image:
        bits = imagehash.phash(to_rgb(image), hash_size=HASH_SIZE).hash
    return np.packbits(bits).view(np.uint64)


def near_pairs(hashes, max_distance):
    """(first, second) index arrays, first < second, of the rows of `hashes` at most max_distance bits apart."""
    firsts, seconds = [np.empty(0, np.intp)], [np.empty(0, np.intp)]
    for start in range(0, len(hashes), BLOCK):
        block = hashes[start:start + BLOCK]
        # Each block meets only itself and later rows: every pair once.
        distances = np.bitwise_count(block[:, None, :] ^ hashes[None, start:, :]).sum(axis=2)
        rows, columns = np.nonzero(distances <= max_distance)
        later = rows < columns
        firsts.append(rows[later] + start)
        seconds.append(columns[later] + start)
    return np.concatenate(firsts), np.concatenate(seconds)


def find_duplicates(root, manifest, max_distance=DEFAULT_MAX_DISTANCE):
    """One row (group, path, split, label, kind) per image that has a copy elsewhere in the manifest.

    `manifest` has path (relative to `root`), split, label and sha256 (content_hash). A group is a
    set of images joined by equal bytes or by perceptual hashes at most `max_distance` bits apart,
    in any split and class. kind is `exact` for an image whose bytes equal another's, else `near`.
    Groups are numbered from 0 in the order of their first path; rows are sorted by group, path.
    """
    if not 0 <= max_distance <= HASH_BITS:
        raise PipelineError(f"max_distance for duplicates is in bits of a {HASH_BITS}-bit hash (got {max_distance}): "
                            f"use 0-{HASH_BITS}; {DEFAULT_MAX_DISTANCE} catches resized and re-encoded copies")
    # Equal bytes are one content: hashed once, and a single node of the graph.
    content, shas = pd.factorize(manifest["sha256"])
    first_paths = manifest["path"].groupby(content).first()
    hashes = np.array([perceptual_hash(Path(root, path)) for path in first_paths]).reshape(len(shas), HASH_WORDS)
    first, second = near_pairs(hashes, max_distance)
    graph = coo_matrix((np.ones(len(first)), (first, second)), shape=(len(shas), len(shas)))
    component = connected_components(graph, directed=False)[1][content]
    images_per_component = np.bincount(component)
    copies_per_content = np.bincount(content)
    found = manifest.assign(component=component, kind=np.where(copies_per_content[content] > 1, "exact", "near"))
    found = found[images_per_component[component] > 1].sort_values("path")
    found["group"] = pd.factorize(found["component"])[0]
    return found.sort_values(["group", "path"])[["group", "path", "split", "label", "kind"]].reset_index(drop=True)


def read(path):
    """data/duplicates.csv as prepare wrote it, labels as text."""
    return read_table(path, ["path", "split", "label", "kind"])


def image_groups(paths, duplicates):
    """A group id per path: shared by the images of one duplicate group, every other image its own.

    Cross-validation splits on these ids to keep copies in one fold. A path listed twice (an
    image and its augmented copies) gets one id.
    """
    group_of = dict(zip(duplicates["path"], duplicates["group"]))
    keys = pd.Series([("group", group_of[path]) if path in group_of else ("image", path) for path in paths],
                     dtype=object)
    return pd.factorize(keys)[0]


def heldout_copies(duplicates):
    """The paths of held-out images (not train) in a group with a training image: left out of held-out scores."""
    train_groups = duplicates.loc[duplicates["split"] == "train", "group"]
    copies = duplicates["group"].isin(train_groups) & (duplicates["split"] != "train")
    return set(duplicates.loc[copies, "path"])


def label_conflicts(duplicates):
    """The rows of the groups whose images carry more than one label: one image under two labels is an error."""
    return duplicates[duplicates.groupby("group")["label"].transform("nunique") > 1]
