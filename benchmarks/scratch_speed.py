"""How fast the scratch CNN trains with its augmentation as one warp against Keras's four random layers.

    python benchmarks/scratch_speed.py [--size 150] [--images 256] [--rounds 3]

For each network in pipeline.modeling.scratch.NETWORKS, two models that differ only in their augmentation
layers: the shipped one (augment_layers.RandomAffine: rotation, shifts, shear and zoom in one warp, then
the flip) and Keras's RandomRotation, RandomTranslation, RandomShear and RandomZoom one after
another (what the scratch CNN used before). Each trains one epoch on random 0-255 images, with the
shipped row's transforms; rounds interleave the models so that other work on a shared machine slows
them alike, and the best round of each counts. Prints training images per second and the ratio.
"""
import argparse
import time

import numpy as np
from tabulate import tabulate

from pipeline.config import load_params
from pipeline.data import augment, augment_layers
from pipeline.modeling import networks
from pipeline.modeling.scratch import NETWORKS, ScratchCNN
from pipeline.quiet_keras import keras


def keras_layers(settings, seed):
    """The four separate random layers of Keras that RandomAffine replaces, then the flip."""
    return [keras.layers.RandomRotation(settings["rotation"], fill_mode=augment.FILL, seed=seed),
            keras.layers.RandomTranslation(settings["height_shift"], settings["width_shift"],
                                           fill_mode=augment.FILL, seed=seed + 1),
            keras.layers.RandomShear(x_factor=settings["shear"], fill_mode=augment.FILL, seed=seed + 2),
            keras.layers.RandomZoom(settings["zoom"], fill_mode=augment.FILL, seed=seed + 3),
            keras.layers.RandomFlip("horizontal", seed=seed + 4)]


def models(network, settings, size):
    """{augmentation: compiled model} for one network."""
    shipped = ScratchCNN(settings, network=network)._build(size, 2)
    own = len(augment_layers.model_layers(settings, 0))
    rest = shipped.layers[own:]
    four = keras.Sequential([keras.Input((size, size, 3)), *keras_layers(settings, 0), *rest])
    return {name: networks.compile_classifier(model, 2, keras.optimizers.Adam(1e-3))
            for name, model in (("one warp", shipped), ("Keras's four layers", four))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    params = load_params()
    row = next(iter(params["scratch"].values()))
    settings = {**params["augment"], **row.get("augment", {})}
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (args.images, args.size, args.size, 3)).astype(np.float32)
    y = rng.integers(0, 2, args.images)
    rows = []
    for network in NETWORKS:
        compiled = models(network, settings, args.size)
        best = dict.fromkeys(compiled, 0.0)
        for model in compiled.values():  # warm-up: tracing, allocation
            model.fit(X[:32], y[:32], batch_size=32, epochs=1, verbose=0)
        for _ in range(args.rounds):
            for name, model in compiled.items():
                start = time.perf_counter()
                model.fit(X, y, batch_size=32, epochs=1, verbose=0)
                best[name] = max(best[name], args.images / (time.perf_counter() - start))
        rows += [[network, name, f"{rate:.1f}", f"{rate / best['one warp']:.2f}"] for name, rate in best.items()]
    print(tabulate(rows, headers=["network", "augmentation", "training images/s", "vs one warp"]))


if __name__ == "__main__":
    main()
