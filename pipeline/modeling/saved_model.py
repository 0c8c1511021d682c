"""The one kind of model file: what every training stage saves and `predict` loads, image files in, probabilities out.

A SavedModel is either a Keras model of images (the fine-tuned backbone, the scratch CNN), whose
preprocessing is inside it so that it takes RGB images in 0-255, or a head: a scikit-learn classifier of
one backbone output, which it recomputes with the backbone its training features came from.

Loading a model unpickles it, and unpickling runs code, so `SavedModel.load` reads only files this pipeline wrote,
and checks them before unpickling anything:

    pipeline-model\\n                            MAGIC
    {"format": 2, "payload_sha256": ..., ...}\\n   one line of JSON: the header
    payload                                     joblib's pickle of the SavedModel, payload_bytes long

The sha256 catches a file that is not a model, a truncated copy, or a payload changed after it was written.
It is not a signature: whoever can write the file can rewrite its header too, so load models only from
places you trust, as with any pickle.
"""
import hashlib
import io
import json
import re

import joblib
import numpy as np

from pipeline import PipelineError
from pipeline.data.images import load_image
from pipeline.features.backbone import INTERMEDIATE
from pipeline.files import atomic_path
from pipeline.modeling.evaluation import average_with_mirror, head_proba

MAGIC = b"pipeline-model\n"
# Bump when a SavedModel's attributes or the classes it pickles change: older files are then refused, not misread.
FORMAT_VERSION = 3
HEADER_LIMIT = 64 * 1024  # a header takes a few hundred bytes; a longer first line is not one
RETRAIN = "retrain it with `dvc repro`"


class SavedModel:
    """A trained row as `predict` runs it.

    model: a Keras model of (n, input_size, input_size, 3) RGB images in 0-255, its preprocessing inside it;
        or, for a head, a fitted scikit-learn classifier of feature vectors (labels 0..classes-1).
    classes: the class names, in the order of the probability columns.
    input_size: pixels per side that images are resized to.
    tta: average each image's probabilities with its mirror image's, as its held-out score did.
    preprocessing: None for a Keras model of images; for a head, the pipeline.modeling.feature_pass.FeaturePass
        that turns image files into the vectors it reads (the backbone its training features came from).
    quantized: for a network fine-tuned on features extracted in int8, (the unloaded
        pipeline.features.extraction.Extractor of the quantized network, the Keras model of its intermediate
        output that continues it): what scored the row, so what `predict` runs. `model`, float32 throughout,
        is what the ONNX export converts.
    """

    def __init__(self, model, classes, input_size, tta=False, preprocessing=None, quantized=None):
        self.model = model
        self.classes = list(classes)
        self.input_size = int(input_size)
        self.tta = bool(tta)
        self.preprocessing = preprocessing
        self.quantized = quantized

    @property
    def kind(self):
        return "images" if self.preprocessing is None else "head"

    def predict_proba(self, files, batch_size=32, weights=None, passes=None):
        """(len(files), classes) probabilities of image files.

        For a head: `weights` is the backbone's weights file when not the one recorded at training, and
        `passes` a dict kept between models on the same files, so that heads on one backbone share its pass.
        """
        files = list(files)
        if self.preprocessing is None:
            return np.concatenate([
                self.predict_proba_arrays(np.stack([load_image(f, self.input_size)
                                                    for f in files[start:start + batch_size]]))
                for start in range(0, len(files), batch_size)])
        return self.predict_proba_arrays(*self.preprocessing(files, self.tta, weights, batch_size, passes))

    def predict_proba_arrays(self, inputs, mirrored=None):
        """(len(inputs), classes) probabilities of the arrays the model reads: images (0-255; their mirror
        images are made here), or a head's feature vectors (with `mirrored`, the mirror images' vectors, when
        it uses TTA)."""
        if self.preprocessing is None:
            from pipeline.data import augment
            from pipeline.modeling import networks

            def proba(images):
                if self.quantized is None:
                    return networks.keras_proba(self.model, images)
                front, rest = self.quantized
                return networks.keras_proba(rest, front.load()(images)[INTERMEDIATE])

            return average_with_mirror(proba, inputs, augment.mirror(inputs) if self.tta else None)
        return head_proba(self.model, inputs, len(self.classes), mirrored if self.tta else None)

    def header(self):
        """What the file says about itself before its payload (readable with `head -2`)."""
        return {"format": FORMAT_VERSION, "kind": self.kind, "classes": self.classes,
                "input_size": self.input_size, "tta": self.tta}

    def save(self, path):
        """Write the model file atomically: MAGIC, the header line (with the payload's sha256), the payload."""
        buffer = io.BytesIO()
        joblib.dump(self, buffer)
        payload = buffer.getvalue()
        header = {**self.header(), "payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest()}
        with atomic_path(path) as tmp:
            tmp.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)

    @staticmethod
    def load(path):
        """The SavedModel in a model file, unpickled only once read_header has checked the file."""
        _, payload = read_header(path)
        try:
            model = joblib.load(io.BytesIO(payload))
        except Exception as exc:  # a class renamed or a library changed since it was written
            innermost = (str(exc).strip().splitlines() or [""])[-1]  # Keras nests its reasons, the cause last
            reason = f"{type(exc).__name__}: {innermost}"[:300]
            raise PipelineError(f"could not load {path} ({reason}): {RETRAIN}") from exc
        if not isinstance(model, SavedModel):
            raise PipelineError(f"{path} holds a {type(model).__name__}, not a pipeline model: {RETRAIN}")
        return model


def read_header(path):
    """(header, payload) of a model file, checked: magic, format version, length and sha256; nothing unpickled."""
    try:
        with open(path, "rb") as file:
            magic = file.read(len(MAGIC))
            line = file.readline(HEADER_LIMIT)
            payload = file.read()
    except FileNotFoundError:
        raise PipelineError(f"model {path} not found: train it with `dvc repro`, or check the name") from None
    except IsADirectoryError:
        raise PipelineError(f"model {path} is a folder: name a model file, e.g. models/NAME.model") from None
    except OSError as exc:
        raise PipelineError(f"cannot read model {path} ({exc.strerror}): check its permissions") from None
    if magic != MAGIC or not line.endswith(b"\n") and len(line) < HEADER_LIMIT:
        raise PipelineError(not_a_model(path, magic + line))
    try:
        header = json.loads(line)
        version, size, digest = header["format"], header["payload_bytes"], header["payload_sha256"]
    except (ValueError, TypeError, KeyError):
        raise PipelineError(f"{path} has a damaged header: {RETRAIN}") from None
    if version != FORMAT_VERSION:
        raise PipelineError(f"{path} is model format {version} and this pipeline reads format {FORMAT_VERSION}: "
                            f"{RETRAIN}")
    if len(payload) < size:
        raise PipelineError(f"{path} is truncated ({len(payload)} of its {size} bytes of model): copy it again, "
                            f"or {RETRAIN}")
    if len(payload) != size or hashlib.sha256(payload).hexdigest() != digest:
        raise PipelineError(f"{path} has changed since the pipeline wrote it (its sha256 differs from its header's), "
                            f"so it is not loaded: {RETRAIN}")
    return header, payload


def not_a_model(path, start):
    """Why the file at `path`, which begins with `start`, is not read: what it is, and what to do instead."""
    if not start:
        return f"{path} is empty: copy it again, or {RETRAIN}"
    if MAGIC.startswith(start) or start.startswith(MAGIC):  # the header cut short
        return f"{path} is truncated ({len(start)} bytes, cut inside its header): copy it again, or {RETRAIN}"
    for pattern, kind, advice in FOREIGN:
        if re.match(pattern, start):
            return f"{path} is not a model file this pipeline wrote: it is {kind}; {advice}"
    return (f"{path} is not a model file this pipeline wrote (it starts with {start[:8]!r}, not {MAGIC!r}): "
            f"name a models/NAME.model file, or {RETRAIN}")


# What else a model path may name, by how its bytes start, and what to do about it.
FOREIGN = (
    (rb"\x80[\x02-\x05]", "a pickle (or joblib) file",
     f"only this pipeline's model files are loaded, since unpickling runs code: name a models/NAME.model file, "
     f"or {RETRAIN}"),
    # protobuf: field 1 (ir_version, a small number), then another field of the ModelProto
    (rb"\x08[\x01-\x7f][\x12\x1a\x22\x28\x32\x3a\x42]", "an ONNX file (python -m pipeline.export writes those)",
     "run it with ONNX Runtime (README: Using a model elsewhere); predict reads models/NAME.model files"),
    (rb"\x89HDF\r\n", "an HDF5 file (Keras weights or cached features?)", "name a models/NAME.model file"),
    (rb"PK\x03\x04", "a zip archive (a .keras model?)", "name a models/NAME.model file"),
)


def average_proba(models, files, batch_size=32, weights=None):
    """The models' probabilities of `files` averaged (the ensemble); heads on one backbone share its pass."""
    if any(model.classes != models[0].classes for model in models):
        raise PipelineError("the models were trained on different classes: average only models of one run")
    passes = {}
    return np.mean([model.predict_proba(files, batch_size, weights, passes) for model in models], axis=0)
