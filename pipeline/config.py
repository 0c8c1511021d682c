"""Read and check params.yaml, so that a typo fails at once with a message naming it."""
import difflib
from pathlib import Path

import yaml

from pipeline import PipelineError

# Every section and key params.yaml may hold, with the type of its value.
# `heads` is free-form here: pipeline.heads checks each head's type and settings.
SCHEMA = {
    "data": {
        "dir": str,
        "split": {"validation": float, "test": float, "seed": int},
    },
    "backbone": {"weights": str, "input_size": int, "pooling": str, "batch_size": int},
    "evaluate": {"folds": int, "seed": int},
    "heads": dict,
}
POOLINGS = ("flatten", "avg", "max")
TYPE_NAMES = {str: "text", int: "whole number", float: "number", dict: "mapping"}


def load_params(path="params.yaml"):
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path} not found: run from the project folder, or pass --params")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from exc
    check(params, SCHEMA, prefix="")
    if params["backbone"]["pooling"] not in POOLINGS:
        raise PipelineError(
            f"params.yaml: backbone.pooling is {params['backbone']['pooling']!r}; "
            f"use one of {', '.join(POOLINGS)}"
        )
    return params


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


def is_instance(value, expected):
    if expected is float:  # YAML writes 0 for 0.0
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def suggest(word, choices):
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f": did you mean {close[0]!r}?"
    return f"; known keys here: {', '.join(choices)}"
