"""Who computes the images that the feature cache lacks: this process (`local`) or a Ray cluster (`ray`).

Work is cut into shards of SHARD_IMAGES images, and each shard into batches, the same way for
every runner, so a shard holds the same numbers whoever computed it.
"""
from tqdm import tqdm

from pipeline import PipelineError
from pipeline.features import extraction

RUNNERS = ("local", "ray")
SHARD_IMAGES = 128  # images per cache shard: what an interruption can lose, and a worker's unit of work


def check(runner):
    if runner not in RUNNERS:
        raise PipelineError(f"params.yaml: backbone.runner is {runner!r}; use one of {', '.join(RUNNERS)}")


def shards(files, keys, view, cache):
    """(files, keys) of each shard still to compute for the view; an image that is there twice is computed once."""
    first_file = dict(zip(keys, files))
    todo = cache.missing(view.id, keys)
    return [([first_file[key] for key in todo[start:start + SHARD_IMAGES]], todo[start:start + SHARD_IMAGES])
            for start in range(0, len(todo), SHARD_IMAGES)]


def extract(runner, extractor, cache, views, files, keys, batch_size, desc=None):
    """Fill the cache with every view of every image; returns how many images had something computed."""
    work = {view: shards(files, keys, view, cache) for view in views}
    todo = {key for shard_list in work.values() for _, shard_keys in shard_list for key in shard_keys}
    if not todo:
        return 0
    if runner == "ray":
        from pipeline.features import ray_runner  # an optional extra: pip install .[ray]
        ray_runner.extract(extractor, cache, work, batch_size)
        return len(todo)
    extractor.load()
    total = sum(len(shard_keys) for shard_list in work.values() for _, shard_keys in shard_list)
    with tqdm(total=total, desc=desc, unit="view", disable=desc is None, mininterval=5) as progress:
        for view, shard_list in work.items():
            for shard_files, shard_keys in shard_list:
                extraction.fill_cache(extractor, cache, view, shard_files, shard_keys, batch_size)
                progress.update(len(shard_keys))
    return len(todo)
