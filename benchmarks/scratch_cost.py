"""What one training epoch of the shipped scratch CNN costs per image at each input size.

    python benchmarks/scratch_cost.py [--sizes 150 112 96] [--images 512] [--rounds 3] [--precision bf16]

The shipped row's network and augmentation (params.yaml) train one epoch on random 0-255 images at each
size; rounds interleave the sizes so that other work on a shared machine slows them alike, and the best
round of each counts. Prints training images per second and each size's cost against the first size's.
A run's cost is then epochs x images x seconds per image.
"""
import argparse
import time

import numpy as np
from tabulate import tabulate

from pipeline.config import load_params
from pipeline.modeling import networks
from pipeline.modeling.scratch import OPTIMIZERS, ScratchCNN


def compiled(size, precision):
    params = load_params()
    row = dict(params["scratch"]["scratch_cnn"])
    augmentation = {**params["augment"], **row.pop("augment", {})}
    cnn = ScratchCNN(augmentation, network=row["network"], precision=precision)
    return networks.compile_classifier(cnn._build(size, 2), 2, OPTIMIZERS[row["optimizer"]](row["learning_rate"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[150, 112, 96])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="bf16", choices=sorted(networks.DTYPE_POLICIES))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    models = {size: compiled(size, args.precision) for size in args.sizes}
    data = {size: (rng.integers(0, 256, (args.images, size, size, 3)).astype(np.float32),
                   rng.integers(0, 2, args.images)) for size in args.sizes}
    best = {size: np.inf for size in args.sizes}
    for size in args.sizes:  # a warm-up epoch each: tracing and allocation
        models[size].fit(*data[size], batch_size=32, epochs=1, verbose=0)
    for _ in range(args.rounds):
        for size in args.sizes:
            start = time.perf_counter()
            models[size].fit(*data[size], batch_size=32, epochs=1, verbose=0)
            best[size] = min(best[size], time.perf_counter() - start)
    first = args.sizes[0]
    print(tabulate([{"input px": size, "images/s": round(args.images / best[size], 1),
                     f"cost against {first} px": round(best[size] / best[first], 3)} for size in args.sizes],
                   headers="keys", tablefmt="github"))


if __name__ == "__main__":
    main()
