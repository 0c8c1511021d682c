"""A head's preprocessing: image files to the vectors it reads, by the backbone pass its training features came from.

Kept apart from saved_model so that only the train stage, which saves heads, depends on the backbone
code: the scratch CNN and fine-tuning save models of images and never run this.
"""
from pipeline import PipelineError
from pipeline.modeling import heads

# What decides a backbone's outputs: two heads whose features agree on these share one pass over the files.
PASS_KEYS = ("backbone", "weights_sha256", "input_size", "pooling", "engine", "precision", "calibration_sha256")


class FeaturePass:
    """The backbone as it made a head's training features (`provenance`: the features file's attributes), and
    the head's `layer` (a key of pipeline.modeling.heads.LAYERS). `networks`: for features extracted in int8,
    {backbone: its quantized network as (.xml, .bin) bytes} (pipeline.features.store.read_networks), run as it is:
    quantizing again would need the calibration images."""

    def __init__(self, provenance, layer=heads.DEFAULT_LAYER, networks=None):
        self.provenance = provenance
        self.layer = layer
        self.networks = networks or {}

    def __call__(self, files, mirrored=False, weights=None, batch_size=32, passes=None):
        """(vectors of `files`, vectors of their mirror images or None).

        `weights`: the backbone's weights file, when not the one recorded; `passes`: a dict kept between heads
        on the same files, which keeps each backbone's outputs for the next head that reads them.
        """
        passes = {} if passes is None else passes
        key = (*(str(self.provenance.get(name)) for name in PASS_KEYS), bool(mirrored))
        if key not in passes:
            passes[key] = self.outputs(files, mirrored, weights, batch_size)
        name = heads.LAYERS[self.layer][0]
        flipped = heads.vectors(passes[key][f"{name}_flipped"], self.layer) if mirrored else None
        return heads.vectors(passes[key][name], self.layer), flipped

    def outputs(self, files, mirrored, weights, batch_size):
        """{output: array} over `files` and, if `mirrored`, their mirror images (as `<output>_flipped`), on the
        engine and at the precision the features were extracted with; fused as they were for several backbones."""
        from pipeline.features import fusion  # TensorFlow loads only when a head predicts

        return fusion.combine([self.backbone_outputs(part, files, mirrored, weights, batch_size)
                               for part in backbone_parts(self.provenance, weights)])

    def backbone_outputs(self, meta, files, mirrored, weights, batch_size):
        """One backbone's {output: array}, as `outputs` gives them; `meta` is its provenance."""
        from pipeline.features import extraction

        extractor = self.extractor(meta, weights)
        return {f"{name}{view.suffix}": array for view in extraction.views(mirrored=mirrored)
                for name, array in extraction.arrays(extractor, view, files, [None] * len(files), batch_size).items()}

    def extractor(self, meta, weights):
        """The loaded extraction.Extractor of one backbone (`meta`: its provenance) as it made the features."""
        from pipeline.features import backbone, engines, extraction

        name = meta["backbone"]
        size, pooling = int(meta["input_size"]), meta["pooling"]
        if meta["precision"] == "int8":  # the quantized network itself; its weights were checked when quantized
            engines.require("openvino", f"this model runs {name} quantized to int8 by OpenVINO")
            return extraction.quantized(self.networks[name], size, pooling, name).load()
        engine, precision = engines.resolve(meta["engine"], meta["precision"])
        extractor = extraction.Extractor(backbone.weights_source(weights or meta["weights"], name), size, pooling,
                                         engine, precision, name).load()
        check_weights(meta, extractor.weights_sha256_)
        return extractor


def backbone_parts(provenance, weights=None):
    """Each backbone's provenance in a head's features (pipeline.features.fusion.parts), refusing one `weights`
    file for several backbones: predict and the ONNX export both run them from here."""
    from pipeline.features import fusion

    parts = fusion.parts(provenance)
    if weights and len(parts) > 1:
        raise PipelineError(f"--weights names one file, and this model fuses {provenance['backbone']}: "
                            "point each backbone's <NAME>_IMAGENET_WEIGHTS variable at its file instead")
    return parts


def check_weights(provenance, digest):
    """Refuse a backbone whose weights (by `digest`, backbone.weights_digest) are not the ones in `provenance`."""
    from pipeline.features import backbone

    if digest != provenance["weights_sha256"]:
        name = provenance["backbone"]
        raise PipelineError(f"these {name} weights differ from the ones the model was trained on: pass the "
                            f"same weights with --weights (or the same {backbone.get(name).weights_env})")
