import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import PipelineError
from pipeline.data.duplicates import (
    DEFAULT_MAX_DISTANCE,
    HASH_BITS,
    HASH_WORDS,
    content_hash,
    find_duplicates,
    heldout_copies,
    image_groups,
    label_conflicts,
    near_pairs,
)
from tests.conftest import COLOURS, write_image

# Noise is the hardest case for a perceptual hash; at 96 px a copy shrunk to 64 px and saved as
# JPEG moved at most 18 bits over 20 seeds, and two different noise images were 108 or more apart.
SIZE = 96


def original(root, relative, colour="red", seed=0):
    return write_image(root / relative, COLOURS[colour], seed, size=SIZE)


def byte_copy(root, source, relative):
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / source, root / relative)


def resized_jpeg(root, source, relative):
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    with Image.open(root / source) as image:
        image.resize((64, 64), Image.BICUBIC).save(root / relative, quality=75)


def manifest_of(root):
    files = sorted(f.relative_to(root) for f in root.rglob("*") if f.is_file())
    return pd.DataFrame({"path": [f.as_posix() for f in files], "split": [f.parts[0] for f in files],
                         "label": [f.parts[1] for f in files], "sha256": [content_hash(root / f) for f in files]})


def duplicates_in(root, max_distance=DEFAULT_MAX_DISTANCE):
    return find_duplicates(root, manifest_of(root), max_distance)


def test_content_hash_is_the_sha256_of_every_byte(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(np.random.default_rng(0).bytes(2_500_000))  # several chunks
    assert content_hash(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_byte_copies_and_a_resized_jpeg_copy_are_grouped_but_a_look_alike_is_not(tmp_path):
    original(tmp_path, "train/red/0.png", seed=0)
    original(tmp_path, "train/red/1.png", seed=1)  # same colour class, another image
    original(tmp_path, "train/blue/0.png", "blue", seed=2)
    byte_copy(tmp_path, "train/red/0.png", "validation/red/0.png")
    resized_jpeg(tmp_path, "train/red/0.png", "test/red/small.jpg")
    resized_jpeg(tmp_path, "train/blue/0.png", "test/blue/small.jpg")
    expected = pd.DataFrame([
        (0, "test/blue/small.jpg", "test", "blue", "near"),
        (0, "train/blue/0.png", "train", "blue", "near"),
        (1, "test/red/small.jpg", "test", "red", "near"),
        (1, "train/red/0.png", "train", "red", "exact"),
        (1, "validation/red/0.png", "validation", "red", "exact"),
    ], columns=["group", "path", "split", "label", "kind"])
    pd.testing.assert_frame_equal(duplicates_in(tmp_path), expected)


def test_at_distance_zero_only_identical_images_are_grouped(tmp_path):
    original(tmp_path, "train/red/0.png")
    byte_copy(tmp_path, "train/red/0.png", "test/red/0.png")
    resized_jpeg(tmp_path, "train/red/0.png", "test/red/small.jpg")
    assert duplicates_in(tmp_path, max_distance=0)["path"].tolist() == ["test/red/0.png", "train/red/0.png"]


def test_a_copy_stored_turned_with_an_exif_orientation_is_found(tmp_path):
    original(tmp_path, "train/red/0.png")
    (tmp_path / "test/red").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers turn it 90 degrees clockwise: upright, it is the original again
    with Image.open(tmp_path / "train/red/0.png") as image:
        image.transpose(Image.ROTATE_90).save(tmp_path / "test/red/turned.jpg", exif=exif, quality=90)
    assert duplicates_in(tmp_path)["path"].tolist() == ["test/red/turned.jpg", "train/red/0.png"]


def test_a_copy_under_another_label_is_a_conflict(tmp_path):
    original(tmp_path, "train/red/0.png", seed=0)
    original(tmp_path, "train/red/1.png", seed=1)
    byte_copy(tmp_path, "train/red/0.png", "train/blue/0.png")
    byte_copy(tmp_path, "train/red/1.png", "test/red/1.png")  # a copy, but under the same label
    conflicts = label_conflicts(duplicates_in(tmp_path))
    assert conflicts["path"].tolist() == ["train/blue/0.png", "train/red/0.png"]
    assert conflicts["label"].tolist() == ["blue", "red"]


def test_heldout_copies_are_the_held_out_images_grouped_with_a_training_image(tmp_path):
    original(tmp_path, "train/red/0.png", seed=0)
    original(tmp_path, "test/blue/a.png", "blue", seed=1)
    byte_copy(tmp_path, "train/red/0.png", "test/red/0.png")
    resized_jpeg(tmp_path, "train/red/0.png", "validation/red/0.jpg")
    byte_copy(tmp_path, "test/blue/a.png", "test/blue/b.png")  # copies of each other, neither in train
    assert heldout_copies(duplicates_in(tmp_path)) == {"test/red/0.png", "validation/red/0.jpg"}


def test_image_groups_share_an_id_within_a_duplicate_group_only():
    duplicates = pd.DataFrame({"group": [0, 0, 1, 1], "path": ["a", "b", "c", "d"]})
    paths = ["a", "x", "b", "c", "y", "d", "x"]  # x twice: an image and its augmented copy
    ids = image_groups(paths, duplicates)
    assert ids.dtype.kind == "i"
    assert pd.factorize(ids)[0].tolist() == [0, 1, 0, 2, 3, 2, 1]


def test_near_pairs_finds_exactly_the_pairs_within_the_distance():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**64, size=(300, HASH_WORDS), dtype=np.uint64)  # more than one block
    for first, second in [(3, 290), (10, 11), (100, 299), (257, 258)]:
        flips = rng.choice(HASH_BITS, size=first % 7 + 2, replace=False)
        bits = np.unpackbits(hashes[first].view(np.uint8))
        bits[flips] ^= 1
        hashes[second] = np.packbits(bits).view(np.uint64)
    bits = np.unpackbits(hashes.view(np.uint8), axis=1)
    expected = {(i, j) for i in range(300) for j in range(i + 1, 300) if (bits[i] != bits[j]).sum() <= 8}
    assert expected and set(zip(*near_pairs(hashes, 8))) == expected


@pytest.mark.parametrize("max_distance", [-1, HASH_BITS + 1])
def test_a_distance_beyond_the_hash_is_an_error(tmp_path, max_distance):
    original(tmp_path, "train/red/0.png")
    with pytest.raises(PipelineError, match="max_distance"):
        duplicates_in(tmp_path, max_distance)
