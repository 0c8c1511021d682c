"""How fast each backbone engine extracts features, side by side in one process, against Keras `predict`.

    python benchmarks/engine_speed.py [DATASET_DIR] [--images 160] [--sizes 150 224] [--rounds 2]

For each input size: decoding and resizing alone, then in each round Keras `predict` on images
already decoded and preprocessed in memory (the baseline), followed by every engine and precision
running the pipeline's own extraction: decode and resize each file (pipeline.data.images.load_image),
preprocess, run both outputs. Rounds interleave the engines so that other work on a shared machine
slows them alike; the best round of each is compared with the best baseline. It prints images per
second, that ratio, the share of the extraction spent decoding, and how far each engine's pooled
features are from Keras fp32's (max relative difference, min cosine over images). Set
VGG16_IMAGENET_WEIGHTS to a local weights file when offline.
"""
import argparse
import os
import time

import numpy as np
from tabulate import tabulate

from pipeline import PipelineError
from pipeline.data.images import files_under, load_image
from pipeline.features import backbone, engines


def sample(folder, count):
    """`count` files spread evenly over the sorted listing, so every class is in."""
    files = files_under(folder)
    step = max(1, len(files) // count)
    return files[::step][:count]


def decode(files, size):
    return np.stack([load_image(f, size) for f in files])


def keras_predict(model, arrays, batch_size):
    """(img/s, features) of Keras predict on preprocessed arrays in memory."""
    model.predict(arrays[:batch_size], batch_size=batch_size, verbose=0)  # warm-up: tracing, allocation
    start = time.perf_counter()
    out = model.predict(arrays, batch_size=batch_size, verbose=0)
    return len(arrays) / (time.perf_counter() - start), np.asarray(out["features"], dtype=np.float32)


def extract(run, files, size, batch_size):
    """(img/s, seconds decoding, features) of the pipeline-style extraction from the files."""
    run(backbone.preprocess(decode(files[:batch_size], size)))  # warm-up, as Keras gets one
    decoding, features = 0.0, []
    start = time.perf_counter()
    for first in range(0, len(files), batch_size):
        tick = time.perf_counter()
        batch = backbone.preprocess(decode(files[first:first + batch_size], size))
        decoding += time.perf_counter() - tick
        features.append(run(batch)["features"])
    return len(files) / (time.perf_counter() - start), decoding, np.concatenate(features)


def distance(got, expected):
    """(max |difference| / max |expected|, min cosine over images)."""
    cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    return np.abs(got - expected).max() / np.abs(expected).max(), cosine.min()


def settings_here(wanted):
    """The (engine, precision) pairs that run here; the others are named and skipped."""
    runnable = []
    for engine, precision in wanted:
        try:
            runnable.append(engines.resolve(engine, precision))
        except PipelineError as exc:
            print(f"skipped {engine} {precision}: {exc}")
    return runnable


def benchmark_size(files, size, args, settings):
    """One table: every engine's extraction in each round, after Keras predict in the same round."""
    model = backbone.extractor(backbone.conv_base(args.weights, size), args.pooling)
    start = time.perf_counter()
    arrays = decode(files, size)
    decode_speed = len(files) / (time.perf_counter() - start)
    arrays = backbone.preprocess(arrays)
    runs, convert = {}, {}
    for setting in settings:
        start = time.perf_counter()
        runs[setting] = engines.compile_for(model, *setting)
        convert[setting] = time.perf_counter() - start
    baseline, speeds, decoding_share, distances = [], {s: [] for s in settings}, {}, {}
    for _ in range(args.rounds):  # interleaved, so a burst of other work hits every engine alike
        speed, reference = keras_predict(model, arrays, args.batch_size)
        baseline.append(speed)
        for setting, run in runs.items():
            speed, decoding, features = extract(run, files, size, args.batch_size)
            speeds[setting].append(speed)
            decoding_share[setting] = decoding * speed / len(files)
            distances[setting] = distance(features, reference)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n## {size} px, {len(files)} images, batch {args.batch_size}, pooling {args.pooling}, "
          f"best of {args.rounds} rounds (load average now {load} on {os.cpu_count()} CPUs)\n")
    print(f"Keras predict on preloaded arrays: {' '.join(f'{b:.2f}' for b in baseline)} img/s "
          f"(best {max(baseline):.2f}); decode + resize alone: {decode_speed:.0f} img/s\n")
    table = [[*setting, f"{convert[setting]:.1f}", " ".join(f"{s:.2f}" for s in speeds[setting]),
              f"{max(speeds[setting]) / max(baseline):.2f}x", f"{decoding_share[setting]:.0%}",
              f"{distances[setting][0]:.1e}", f"{distances[setting][1]:.6f}"] for setting in settings]
    header = ["engine", "precision", "convert s", "extraction img/s per round", "best vs best Keras predict",
              "decoding share", "max rel diff", "min cosine"]
    print(tabulate(table, header, tablefmt="github", disable_numparse=True), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", help="a folder of images, e.g. $PIPELINE_TEST_DATASETS/cats-dogs-small")
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--sizes", type=int, nargs="+", default=[150, 224])
    parser.add_argument("--pooling", default="flatten", choices=["flatten", "avg", "max"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repeats; the best of them counts")
    parser.add_argument("--weights", default="imagenet", help="imagenet ($VGG16_IMAGENET_WEIGHTS) or a .h5 file")
    parser.add_argument("--settings", nargs="+", metavar="ENGINE:PRECISION",
                        default=[f"{e}:{p}" for e in engines.ENGINES for p in engines.PRECISIONS])
    args = parser.parse_args(argv)
    settings = settings_here(tuple(s.split(":")) for s in args.settings)
    files = sample(args.dataset, args.images)
    for size in args.sizes:
        benchmark_size(files, size, args, settings)


if __name__ == "__main__":
    main()
