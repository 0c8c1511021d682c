"""The `ray` runner: Ray Data hands whole cache shards to an actor pool, each actor holding one loaded backbone.

With RAY_ADDRESS set (Ray's own convention) it joins that cluster; otherwise Ray starts one on this
machine. Workers read the images and write the cache's shards themselves, so on a cluster the
data folder and the project's cache/ must be on a filesystem that every node sees.
"""
import logging
import os
from pathlib import Path

import ray

from pipeline.features import extraction
from pipeline.features.cache import FeatureCache

CPUS_PER_WORKER = 2  # a backbone's convolutions use several threads well; one actor per pair of cores


class ShardWorker:
    """Loads the extractor once, then computes each shard it is given into the cache."""

    def __init__(self, extractor, cache, views, batch_size):
        # Set before TensorFlow loads in this fresh process, so actors sharing a node do not oversubscribe it.
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(CPUS_PER_WORKER))
        self.extractor = extractor.load()
        self.cache, self.views, self.batch_size = cache, views, batch_size

    def __call__(self, batch):
        for view_id, files, keys in zip(batch["view"], batch["files"], batch["keys"]):
            extraction.fill_cache(self.extractor, self.cache, self.views[view_id], list(files), list(keys),
                                  self.batch_size)
        return {"images": [len(keys) for keys in batch["keys"]]}


def start():
    """Join $RAY_ADDRESS's cluster, or start a local one, unless this process already did."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
    # Ray Data logs its plan and progress every few seconds at INFO; the runner prints its own summary.
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def extract(extractor, cache, work, batch_size):
    """Compute `work` ({view: [(files, keys) of a shard]}) on the cluster, a shard per call."""
    start()
    shared_cache = FeatureCache(cache.root.resolve(), cache.provenance)  # workers may run elsewhere
    items = [{"view": view.id, "files": [str(Path(f).resolve()) for f in files], "keys": keys}
             for view, shard_list in work.items() for files, keys in shard_list]
    workers = max(1, min(len(items), int(ray.cluster_resources().get("CPU", 1)) // CPUS_PER_WORKER))
    ray.data.from_items(items).map_batches(
        ShardWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=CPUS_PER_WORKER,
        fn_constructor_args=(extractor.unloaded(), shared_cache, {view.id: view for view in work}, batch_size),
    ).materialize()
