"""The Ray runner next to the local one: the same images into two empty feature caches, timed in one process.

    python benchmarks/runner_speed.py IMAGE_DIR [--images 320] [--size 150] [--cpus 2]

Starts a local Ray of --cpus CPUs (or joins $RAY_ADDRESS), so the Ray time includes its actors
loading VGG16. Checks that both caches hold the same numbers. Set VGG16_IMAGENET_WEIGHTS offline.
"""
import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import ray

from pipeline.data.images import files_under
from pipeline.features import backbone, engines, extraction, runners
from pipeline.features.cache import FeatureCache


def timed_extract(runner, extractor, files, keys, root):
    cache = FeatureCache(root, extractor.provenance())
    start = time.perf_counter()
    runners.extract(runner, [(extractor, cache)], [extraction.IMAGE], files, keys, batch_size=32)
    seconds = time.perf_counter() - start
    return seconds, np.concatenate([rows["features"] for rows in cache.rows([extraction.IMAGE], keys)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images")
    parser.add_argument("--images", dest="count", type=int, default=320)
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    files = files_under(Path(args.images))
    files = files[::max(1, len(files) // args.count)][:args.count]
    keys = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    engine, precision = engines.resolve("auto", "auto")
    weights = backbone.weights_source("imagenet")
    extractor = extraction.Extractor(weights, args.size, "flatten", engine, precision).load()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        local_s, local = timed_extract("local", extractor, files, keys, Path(tmp) / "local")
        ray_s, remote = timed_extract("ray", extractor, files, keys, Path(tmp) / "ray")
    print(f"{len(files)} images at {args.size} px, VGG16 on {engine} at {precision}:")
    print(f"  local: {len(files) / local_s:.1f} images/s ({local_s:.0f} s)")
    print(f"  ray, {args.cpus} CPUs: {len(files) / ray_s:.1f} images/s ({ray_s:.0f} s, actors loading VGG16 included);"
          f" {local_s / ray_s:.2f}x local")
    print(f"  same numbers: {np.array_equal(local, remote)}")


if __name__ == "__main__":
    main()
