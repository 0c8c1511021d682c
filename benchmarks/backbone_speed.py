"""How fast each backbone extracts features, side by side in one process: the pipeline's own extraction.

    python benchmarks/backbone_speed.py DATASET_DIR [--backbones vgg16 densenet121 mobilenetv2] [--images 96]
        [--sizes 150 224] [--rounds 3] [--engine auto] [--precision auto]

For each size, every backbone runs pipeline.features.extraction on the same files (decode, resize, its own
preprocessing, both outputs), on the engine and precision that `auto` picks here, as the features stage
does. Rounds interleave the backbones, so that other work on a shared machine slows them alike; the best
round of each is compared with the first backbone's best. ImageNet weights come from each backbone's
<NAME>_IMAGENET_WEIGHTS (the speed does not depend on the values, but this is what a user runs).
"""
import argparse
import os
import time

from engine_speed import sample  # a script beside this one
from tabulate import tabulate

from pipeline.features import backbone, engines, extraction


def speed(extractor, files, batch_size):
    """Images per second of one pass over `files`, after a warm-up batch."""
    extraction.arrays(extractor, extraction.IMAGE, files[:batch_size], [None] * batch_size, batch_size)
    start = time.perf_counter()
    extraction.arrays(extractor, extraction.IMAGE, files, [None] * len(files), batch_size)
    return len(files) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", help="a folder of images, e.g. $PIPELINE_TEST_DATASETS/cats-dogs-small")
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "densenet121", "mobilenetv2"])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--sizes", type=int, nargs="+", default=[150, 224])
    parser.add_argument("--pooling", default="flatten", choices=["flatten", "avg", "max"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repeats; the best of them counts")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    engine, precision = engines.resolve(args.engine, args.precision)
    files = sample(args.dataset, args.images)
    for size in args.sizes:
        extractors = {name: extraction.Extractor(backbone.weights_source(backbone.IMAGENET, name), size, args.pooling,
                                                 engine, precision, name).load() for name in args.backbones}
        speeds = {name: [] for name in extractors}
        for _ in range(args.rounds):
            for name, extractor in extractors.items():
                speeds[name].append(speed(extractor, files, args.batch_size))
        first = max(speeds[args.backbones[0]])
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\n## {size} px, {len(files)} images, {engine} {precision}, batch {args.batch_size}, best of "
              f"{args.rounds} rounds (load average now {load} on {os.cpu_count()} CPUs)\n")
        table = [[name, " ".join(f"{s:.1f}" for s in runs), f"{max(runs):.1f}", f"{max(runs) / first:.2f}x"]
                 for name, runs in speeds.items()]
        print(tabulate(table, ["backbone", "img/s per round", "best img/s", f"vs {args.backbones[0]}"],
                       tablefmt="github", disable_numparse=True), flush=True)


if __name__ == "__main__":
    main()
