"""Several backbones' view of the same image as one feature vector: each one's pooled features at unit length,
side by side.

Each backbone's block is L2-normalised before the concatenation, so that none drowns the others, whatever
its number of features (VGG16 flattened at 150 px gives 8,192, MobileNetV2 32,000) or their scale: the dot
product of two fused vectors is the sum of the backbones' cosine similarities, and a head with `scale: l2`
(or an RBF SVM on such inputs) sees their average. A head with `scale: standard` gives every feature unit
variance again, so there a backbone weighs by its number of features.

The intermediate output (`layer: intermediate` heads, fine-tuning) is the first listed backbone's: fine-tuning
continues one network. One backbone's features pass through untouched, so they stay what they always were.
"""
import numpy as np

from pipeline import PipelineError
from pipeline.features import backbone

SEPARATOR = "+"  # between the backbones' names and weight digests in a fused provenance
POOLED = "features"  # the outputs fused (with their _augmented and _flipped views); the others are the first's
PER_BACKBONE = ("backbone", "weights_sha256", "feature_width", "pooling")
METHOD = "each backbone's pooled features L2-normalised, then concatenated"


def name(names):
    """How the report and the logs name a fusion: vgg16+mobilenetv2."""
    return SEPARATOR.join(names)


def provenance(parts):
    """The features file's record of several backbones' provenances (one passes unchanged).

    The settings they share (input size, engine, precision) are stated once; the backbone, its weights
    digest, its width and its pooling (backbone.pooling: auto pools each its own way) are joined in order,
    so `parts` can split them again.
    """
    if len(parts) == 1:
        return parts[0]
    joined = {key: SEPARATOR.join(str(part[key]) for part in parts) for key in PER_BACKBONE}
    return {**parts[0], **joined, "preprocessing": "; ".join(part["preprocessing"] for part in parts),
            "fusion": METHOD}


def parts(meta):
    """Each backbone's provenance from a features file's attributes: `meta` itself for a single backbone."""
    if "fusion" not in meta:
        return [meta]
    count = len(str(meta["backbone"]).split(SEPARATOR))
    # Files fused before pooling was per backbone state their one pooling once: it was every backbone's.
    split = [values if len(values) == count else values * count
             for values in (str(meta[key]).split(SEPARATOR) for key in PER_BACKBONE)]
    return [{**meta, **dict(zip(PER_BACKBONE, values))} for values in zip(*split)]


def first_block(vectors, meta):
    """The first listed backbone's part of fused pooled features (all of them for one backbone), unit length."""
    if "fusion" not in meta:
        return vectors
    return vectors[..., :int(parts(meta)[0]["feature_width"])]


def unit_length(array):
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return array / np.maximum(norms, np.finfo(np.float32).tiny)


def combine(outputs):
    """One {output: array} from each backbone's, for the same images and views."""
    if len(outputs) == 1:
        return outputs[0]
    return {key: (np.concatenate([unit_length(part[key]) for part in outputs], axis=-1) if key.startswith(POOLED)
                  else array) for key, array in outputs[0].items()}


def rows(streams):
    """A features file's chunks ({output: rows}) from each backbone's chunks of the same images, in step."""
    if len(streams) == 1:
        return streams[0]
    return (combine(list(chunks)) for chunks in zip(*streams))


def check_weights(names, weights):
    """A weights file fits one network: a fusion takes each backbone's ImageNet file from its own variable."""
    if len(names) > 1 and weights not in (backbone.IMAGENET, backbone.RANDOM):
        variables = ", ".join(backbone.get(n).weights_env for n in names)
        raise PipelineError(f"params.yaml: backbone.weights names one file, but backbone.name lists {name(names)}: "
                            f"set backbone.weights: imagenet and point {variables} at the files")
