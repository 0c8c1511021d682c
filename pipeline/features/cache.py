"""The per-image feature cache: each image's arrays, found by its content, not its name or split.

One folder per backbone configuration (the provenance's digest: the backbone's name, its weights,
input size, pooling, engine, precision), one subfolder per view, and in it shards: HDF5 files of a few hundred images
each, written atomically by whoever computed them (this process or a Ray worker). An interrupted
extraction therefore keeps every finished shard, and a renamed or moved image is found by its
sha256. The per-split files the heads read are assembled from here.
"""
import hashlib
import json
import warnings
from pathlib import Path

import h5py
import numpy as np

from pipeline.features.backbone import RENAMED_OUTPUTS
from pipeline.files import atomic_path, write_json


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def provenance_digest(provenance):
    """The name of a provenance's folder here (and of its engine model, pipeline.features.extraction)."""
    return digest(json.dumps(provenance, sort_keys=True, default=str))


class FeatureCache:
    def __init__(self, root, provenance):
        self.root = Path(root)
        self.provenance = provenance
        self.dir = self.root / provenance_digest(provenance)

    def shards(self, view_id):
        return sorted((self.dir / view_id).glob("*.h5"))

    def index(self, view_id):
        """{key: (shard, row)} of every image cached for the view; shards come and go, so it is read afresh."""
        found = {}
        for shard in self.shards(view_id):
            try:
                with h5py.File(shard, "r") as h5:
                    keys = h5["keys"].asstr()[:]
            except (OSError, KeyError) as exc:  # not ours to fix: a copied-in or damaged file
                warnings.warn(f"ignoring unreadable feature cache shard {shard} ({exc}); delete it to silence this")
                continue
            found.update((key, (shard, row)) for row, key in enumerate(keys))
        return found

    def missing(self, view_id, keys):
        """The keys (in order, each once) that the view has no arrays for yet."""
        cached = self.index(view_id)
        return list(dict.fromkeys(key for key in keys if key not in cached))

    def add(self, view_id, keys, arrays):
        """Store one shard: `keys[i]`'s arrays are row i of each of `arrays`."""
        if not (self.dir / "provenance.json").exists():
            write_json(self.dir / "provenance.json", self.provenance)  # for people looking in
        name = digest("\n".join(keys))
        with atomic_path(self.dir / view_id / f"{name}.h5") as tmp, h5py.File(tmp, "w") as h5:
            h5["keys"] = np.asarray(keys, dtype=h5py.string_dtype())
            for output, array in arrays.items():
                h5[output] = array

    def gather(self, view_id, keys, chunk=256):
        """Yield {output: array} for `keys`, `chunk` images at a time, in order.

        Each shard's rows come in one read (the span from its first wanted row to its last): reading them one
        at a time took most of the features stage's time when every image was cached (benchmarks/results.md, run 9).
        """
        cached = self.index(view_id)
        open_files = {}
        try:
            for start in range(0, len(keys), chunk):
                chunk_keys = keys[start:start + chunk]
                places = {}  # shard -> ([row in the shard], [place in the chunk])
                for place, key in enumerate(chunk_keys):
                    shard, row = cached[key]
                    rows, at = places.setdefault(shard, ([], []))
                    rows.append(row)
                    at.append(place)
                arrays = {}
                for shard, (rows, at) in places.items():
                    if shard not in open_files:
                        open_files[shard] = h5py.File(shard, "r")
                    first, last = min(rows), max(rows)
                    for output, dataset in open_files[shard].items():
                        if output != "keys":
                            name = RENAMED_OUTPUTS.get(output, output)  # a shard written under an old name
                            if name not in arrays:
                                arrays[name] = np.empty((len(chunk_keys), *dataset.shape[1:]), dataset.dtype)
                            arrays[name][at] = dataset[first:last + 1][np.subtract(rows, first)]
                yield arrays
        finally:
            for h5 in open_files.values():
                h5.close()

    def rows(self, views, keys):
        """Yield a split file's {<output><view suffix>: rows} for `keys`, chunk by chunk, from each view's shards."""
        streams = [self.gather(view.id, keys) for view in views]
        for parts in zip(*streams):
            yield {f"{output}{view.suffix}": array
                   for view, part in zip(views, parts) for output, array in part.items()}
