"""Random image augmentation from params.yaml's `augment` section, as Keras layers.

One set of settings serves the scratch CNN (layers inside the model, active only while
training) and the augmented copies that go through VGG16 into the feature cache.
"""
import keras
import numpy as np

FILL = "nearest"  # what the classic tutorial's ImageDataGenerator used at the borders


def transforms(settings, seed):
    """The geometric transforms that are switched on (0 means off), without the flip."""
    layers = []
    if settings["rotation"]:
        layers.append(keras.layers.RandomRotation(settings["rotation"], fill_mode=FILL, seed=seed))
    if settings["width_shift"] or settings["height_shift"]:
        layers.append(keras.layers.RandomTranslation(
            settings["height_shift"], settings["width_shift"], fill_mode=FILL, seed=seed + 1))
    if settings["shear"]:
        layers.append(keras.layers.RandomShear(x_factor=settings["shear"], fill_mode=FILL, seed=seed + 2))
    if settings["zoom"]:
        layers.append(keras.layers.RandomZoom(settings["zoom"], fill_mode=FILL, seed=seed + 3))
    return layers


def model_layers(settings, seed):
    """All of `augment` as layers to put at the start of a model (they pass images through unchanged at inference)."""
    flip = [keras.layers.RandomFlip("horizontal", seed=seed + 4)] if settings["horizontal_flip"] else []
    return transforms(settings, seed) + flip


def mirror(images):
    """Left-right mirror of a batch (n, height, width, channels)."""
    return images[:, :, ::-1]


class Copies:
    """Makes `count` augmented copies of each image in a batch, reproducibly for a given seed.

    With horizontal_flip on, every other copy is mirrored (the first one is), rather than
    each by a coin toss, so one copy is always the mirror image however few there are.
    """

    def __init__(self, settings, count, seed):
        self.count = count
        self.flip = settings["horizontal_flip"]
        layers = transforms(settings, seed)
        self.transform = keras.Sequential(layers) if layers else None

    def __call__(self, images):
        """(n, h, w, c) images -> (n, count, h, w, c) copies."""
        copies = []
        for index in range(self.count):
            copy = images
            if self.transform is not None:
                copy = np.asarray(self.transform(images, training=True))
            if self.flip and index % 2 == 0:
                copy = mirror(copy)
            copies.append(copy)
        return np.stack(copies, axis=1)
