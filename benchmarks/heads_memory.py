"""Where a head's memory goes: peak resident memory after reading the training features and after its CV.

    cd WORKSPACE && PYTHONPATH=. python PROJECT/benchmarks/heads_memory.py HEAD [--jobs N]

WORKSPACE is a project whose features are made (a benchmark or stage_times workspace); HEAD a row of its
params.yaml's heads. Reads the training features as the train stage does, then runs the stage's 5-fold CV
(evaluation.cross_validate, with the copies found by prepare kept in one fold), `--jobs` folds at a time
(default: the stage's own choice). Nothing is written.
"""
import argparse
import resource
import time

from pipeline import paths
from pipeline.config import load_params
from pipeline.data import duplicates
from pipeline.modeling import evaluation, heads


def peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux: kilobytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("head")
    parser.add_argument("--jobs", type=int)
    args = parser.parse_args()
    params = load_params()
    spec = params["heads"][args.head]
    train = heads.read_vectors(paths.features_file("train"), heads.layer_of(spec))
    views = train.views()
    print(f"training views {views.shape}, {views.nbytes / 1e9:.2f} GB; peak after reading {peak_gib():.2f} GiB")
    start = time.perf_counter()
    groups = duplicates.image_groups(train.paths, duplicates.read(paths.DUPLICATES))
    evaluation.cross_validate(heads.make_head(args.head, spec, seed=params["evaluate"]["seed"]), views, train.y,
                              len(train.classes), params["evaluate"]["folds"], params["evaluate"]["seed"],
                              groups=groups, n_jobs=args.jobs)
    print(f"peak after CV ({args.jobs or 'default'} folds at a time): {peak_gib():.2f} GiB, "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
