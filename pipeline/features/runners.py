"""Who computes the images that the feature cache lacks: this process (`local`) or a Ray cluster (`ray`).

Work is cut into shards of SHARD_IMAGES images, each decoded once for every backbone and view, and cut into
batches the same way for every runner, so a shard holds the same numbers whoever computed it.
"""
from tqdm import tqdm

from pipeline import PipelineError
from pipeline.features import extraction

RUNNERS = ("local", "ray")
SHARD_IMAGES = 128  # images per cache shard: what an interruption can lose, and a worker's unit of work


def check(runner):
    if runner not in RUNNERS:
        raise PipelineError(f"params.yaml: backbone.runner is {runner!r}; use one of {', '.join(RUNNERS)}")


def shards(backbones, views, files, keys):
    """(files, keys, tasks) of each shard still to compute: the images that some backbone lacks some view of, and
    for each backbone and view (its extractor, its cache, the view) the shard's keys it lacks. An image that is
    there twice is computed once."""
    first_file = dict(zip(keys, files))
    lacking = [(extractor, cache, view, set(cache.missing(view.id, keys)))
               for extractor, cache in backbones for view in views]
    todo = [key for key in first_file if any(key in missing for *_, missing in lacking)]
    work = []
    for start in range(0, len(todo), SHARD_IMAGES):
        shard_keys = todo[start:start + SHARD_IMAGES]
        tasks = [(extractor, cache, view, [key for key in shard_keys if key in missing])
                 for extractor, cache, view, missing in lacking]
        work.append(([first_file[key] for key in shard_keys], shard_keys, [task for task in tasks if task[3]]))
    return work


def extract(runner, backbones, views, files, keys, batch_size, desc=None):
    """Fill each backbone's cache with every view of every image; returns how many images had something computed.

    `backbones`: (extractor, its FeatureCache) pairs, all at one input size.
    """
    work = shards(backbones, views, files, keys)
    if not work:
        return 0
    images = sum(len(shard_keys) for _, shard_keys, _ in work)
    if runner == "ray":
        from pipeline.features import ray_runner  # an optional extra: pip install .[ray]
        ray_runner.extract(work, batch_size)
    else:
        with tqdm(total=images, desc=desc, unit="image", disable=desc is None, mininterval=5) as progress:
            for shard_files, shard_keys, tasks in work:
                extraction.fill_shard(tasks, shard_files, shard_keys, batch_size)
                progress.update(len(shard_keys))
    return images
