"""The `ray` runner: Ray Data hands whole cache shards to an actor pool, each actor holding the loaded backbones.

With RAY_ADDRESS set (Ray's own convention) it joins that cluster; otherwise Ray starts one on this
machine. Workers read the images and write the cache's shards themselves, so on a cluster the
data folder and the project's cache/ must be on a filesystem that every node sees.
"""
import json
import logging
import os
from pathlib import Path

import ray

from pipeline.features import extraction
from pipeline.features.cache import FeatureCache

CPUS_PER_WORKER = 2  # a backbone's convolutions use several threads well; one actor per pair of cores


class ShardWorker:
    """Loads the backbones once, then computes each shard it is given into their caches."""

    def __init__(self, backbones, views, batch_size):
        # Set before TensorFlow loads in this fresh process, so actors sharing a node do not oversubscribe it.
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(CPUS_PER_WORKER))
        self.backbones = [(extractor.load(), cache) for extractor, cache in backbones]
        self.views, self.batch_size = views, batch_size

    def __call__(self, batch):
        for files, keys, tasks in zip(batch["files"], batch["keys"], batch["tasks"]):
            tasks = [(*self.backbones[index], self.views[view], needed) for index, view, needed in json.loads(tasks)]
            extraction.fill_shard(tasks, list(files), list(keys), self.batch_size)
        return {"images": [len(keys) for keys in batch["keys"]]}


def start():
    """Join $RAY_ADDRESS's cluster, or start a local one, unless this process already did."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
    # Ray Data logs its plan and progress every few seconds at INFO; the runner prints its own summary.
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def extract(work, batch_size):
    """Compute `work` (runners.shards's (files, keys, tasks) of each shard) on the cluster, a shard per call."""
    start()
    tasks = [task for _, _, shard_tasks in work for task in shard_tasks]
    backbones = list({id(extractor): (extractor, cache) for extractor, cache, _, _ in tasks}.values())
    index = {id(extractor): number for number, (extractor, _) in enumerate(backbones)}
    views = {view.id: view for _, _, view, _ in tasks}
    # Tasks travel as JSON: Ray Data stores each column as Arrow, which takes no Python objects.
    items = [{"files": [str(Path(f).resolve()) for f in files], "keys": keys,
              "tasks": json.dumps([(index[id(extractor)], view.id, needed)
                                   for extractor, _, view, needed in shard_tasks])}
             for files, keys, shard_tasks in work]
    workers = max(1, min(len(items), int(ray.cluster_resources().get("CPU", 1)) // CPUS_PER_WORKER))
    shipped = [(extractor.unloaded(), FeatureCache(cache.root.resolve(), cache.provenance))  # workers may run elsewhere
               for extractor, cache in backbones]
    ray.data.from_items(items).map_batches(
        ShardWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=CPUS_PER_WORKER,
        fn_constructor_args=(shipped, views, batch_size),
    ).materialize()
