"""The scratch CNN's random augmentation layers, from params.yaml's `augment` section: the transforms of the
cached copies (pipeline.data.augment), drawn anew every epoch and active only while training."""
from pipeline.data.augment import FILL, GEOMETRIC, sampling_maps
from pipeline.quiet_keras import keras


class RandomAffine(keras.layers.Layer):
    """Rotation, shifts, shear and zoom of each training image as one affine warp (identity at inference).

    `factors` holds the GEOMETRIC settings; each image draws every value uniformly within ± its
    factor, as the cached copies do (augment.Copies), so the scratch CNN trains on the transforms the
    augmentation preview shows. One warp interpolates each pixel once, where Keras's four separate
    random layers blur the image four times over, and training is faster for it (README, Speed).
    """

    def __init__(self, factors, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.factors = [float(factor) for factor in factors]
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        draws = keras.random.uniform((keras.ops.shape(images)[0], len(GEOMETRIC)), -1.0, 1.0, seed=self.generator)
        maps = sampling_maps(draws * keras.ops.convert_to_tensor(self.factors), *images.shape[1:3], ops=keras.ops)
        return keras.ops.image.affine_transform(images, maps, interpolation="bilinear", fill_mode=FILL)

    def compute_output_shape(self, input_shape):
        return input_shape


def model_layers(settings, seed):
    """All of `augment` as layers to put at the start of a model (they pass images through unchanged at inference)."""
    factors = [settings[name] for name in GEOMETRIC]
    warp = [RandomAffine(factors, seed=seed)] if any(factors) else []
    flip = [keras.layers.RandomFlip("horizontal", seed=seed + 4)] if settings["horizontal_flip"] else []
    return warp + flip
