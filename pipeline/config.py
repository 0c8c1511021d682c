"""Read and check params.yaml, so that a typo fails at once with a message naming it."""
import difflib
from pathlib import Path

import yaml

from pipeline import PipelineError


class SIZE:
    """The type of backbone.input_size: pixels, or 'auto' (pipeline.data.image_size chooses for the images)."""


class NAMES:
    """The type of backbone.name: a registered network, or a list of them (their features fused)."""


# Every section and key params.yaml may hold, with the type of its value.
# `heads`, `finetune` and `scratch` map names to runs; their modules check each run's settings.
SCHEMA = {
    "data": {
        "dir": str,
        "split": {"validation": float, "test": float, "seed": int},
        "duplicates": {"max_distance": int, "heldout": str},
    },
    "backbone": {"name": NAMES, "weights": str, "input_size": SIZE, "pooling": str, "engine": str, "precision": str,
                 "batch_size": int, "runner": str},  # features.backbone, .engines, .runners check them
    "augment": {
        "copies": int, "seed": int, "rotation": float, "width_shift": float, "height_shift": float,
        "shear": float, "zoom": float, "horizontal_flip": bool,
    },
    "evaluate": {"folds": int, "seed": int, "tta": bool, "selection": float},
    "heads": dict,
    "finetune": dict,
    "scratch": dict,
}
POOLINGS = ("auto", "flatten", "avg", "max")  # auto: each backbone's own (pipeline.features.backbone)
HELDOUT_DUPLICATES = ("drop", "keep")
ROW_SECTIONS = ("heads", "finetune", "scratch")  # each name under these is one row of the report
ENSEMBLE = "ensemble"  # the report's row averaging the heads (pipeline.report.selection names it so too)
# A head's `layer` values once named after VGG16's blocks, with the names that fit every backbone.
RENAMED_LAYERS = {"block4": "intermediate", "block5": "pooled"}
TYPE_NAMES = {str: "text", int: "whole number", float: "number", dict: "mapping", bool: "true or false",
              SIZE: "whole number of pixels, or auto",
              NAMES: "backbone name, or a list of names like [vgg16, mobilenetv2]"}


def stage_params(reads, name=None, path="params.yaml"):
    """params.yaml, checked whole, narrowed to the keys a stage declares it reads.

    `reads` are dotted keys ("data.dir", "heads.{name}") that must equal the stage's `params` in
    dvc.yaml (tests/test_dvc_graph.py checks): a stage cannot read a setting that DVC does not
    know it depends on, which would leave `dvc repro` serving stale results.
    """
    params, narrowed = load_params(path), {}
    for read in reads:
        keys = read.format(name=name).split(".")
        value = params
        for depth, key in enumerate(keys):
            if not isinstance(value, dict) or key not in value:
                where = ".".join(keys[:depth]) or "the top level"
                there = ", ".join(value) if isinstance(value, dict) and value else "none"
                raise PipelineError(f"params.yaml has no {key!r} under {where}; there: {there}")
            value = value[key]
        target = narrowed
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return narrowed


def load_params(path="params.yaml"):
    """All of params.yaml, checked: unknown and missing keys and wrong types are errors that name them."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path} not found: run from the project folder, where params.yaml is")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from exc
    check(params, SCHEMA, prefix="")
    check_renamed(params)
    for where, value, allowed in (
        ("backbone.pooling", params["backbone"]["pooling"], POOLINGS),
        ("data.duplicates.heldout", params["data"]["duplicates"]["heldout"], HELDOUT_DUPLICATES),
    ):
        if value not in allowed:
            raise PipelineError(f"params.yaml: {where} is {value!r}; use one of {', '.join(allowed)}")
    selection = params["evaluate"]["selection"]
    if not 0 <= selection < 1:
        raise PipelineError(f"params.yaml: evaluate.selection is {selection}; use a fraction from 0 up to below 1 "
                            "(0.2: a fifth of the training images)")
    check_rows(params)
    return params


def check_rows(params):
    """Raise on a row that cannot run as named: each name is a DVC stage, a report row and the name of
    its files under models/ and results/, so two rows of one name would overwrite each other's."""
    sections = {}
    for section in ROW_SECTIONS:
        for name, settings in params[section].items():
            where = f"params.yaml: {section}.{name}"
            if name == ENSEMBLE:
                raise PipelineError(f"{where}: {ENSEMBLE!r} is the report's row averaging the heads; rename this row")
            if name in sections:
                raise PipelineError(f"{where}: {sections[name]}.{name} has this name too; rename one of them")
            if not isinstance(settings, dict):
                raise PipelineError(f"{where} should be a mapping of settings, got {settings!r}; to switch the row "
                                    f"off, delete it (dvc exp run -S '~{section}.{name}')")
            sections[name] = section
    for name, settings in params["finetune"].items():
        head = settings.get("head")
        if head is not None and head not in params["heads"]:
            raise PipelineError(f"params.yaml: finetune.{name}.head is {head!r}, which is not under heads; name a "
                                f"dense head there, or switch fine-tuning off too (-S '~finetune.{name}')")


def check_renamed(params):
    """Raise on a setting written with its old name, saying the new one (a params.yaml from before the rename)."""
    for name, spec in params["heads"].items():
        layer = spec.get("layer") if isinstance(spec, dict) else None
        if isinstance(layer, str) and layer in RENAMED_LAYERS:
            raise PipelineError(f"params.yaml: heads.{name}.layer {layer!r} is now called "
                                f"{RENAMED_LAYERS[layer]!r}: write layer: {RENAMED_LAYERS[layer]}")


def check(section, schema, prefix):
    """Raise on unknown keys (with a suggestion), missing keys and wrong types."""
    if not isinstance(section, dict):
        raise PipelineError(f"params.yaml: {prefix.rstrip('.') or 'the file'} must be a mapping")
    for key in section:
        if key not in schema:
            raise PipelineError(f"params.yaml: unknown key {prefix}{key}{suggest(key, schema)}")
    for key, expected in schema.items():
        name = prefix + key
        if key not in section:
            raise PipelineError(f"params.yaml: {name} is missing; add it (see the README)")
        value = section[key]
        if isinstance(expected, dict):
            check(value, expected, prefix=name + ".")
        elif not is_instance(value, expected):
            raise PipelineError(
                f"params.yaml: {name} should be a {TYPE_NAMES[expected]}, got {value!r}"
            )
        elif key == "seed" and value < 0:
            raise PipelineError(f"params.yaml: {name} is {value}; seeds are whole numbers from 0 up")


def is_instance(value, expected):
    if expected is NAMES:
        return isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value)
    if expected is SIZE:
        return is_instance(value, int) or value == "auto"
    if expected is float:  # YAML writes 0 for 0.0
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def check_settings(where, settings, known):
    """Raise on a setting that is not in `known`, suggesting the name that was probably meant."""
    for key in settings:
        if key not in known:
            by_lower = {k.lower(): k for k in known}
            close = difflib.get_close_matches(key.lower(), list(by_lower), n=1)
            hint = f"did you mean {by_lower[close[0]]!r}?" if close else f"known: {', '.join(sorted(known))}"
            raise PipelineError(f"{where} has no setting {key!r}; {hint}")


def suggest(word, choices):
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f": did you mean {close[0]!r}?"
    return f"; known keys here: {', '.join(choices)}"
