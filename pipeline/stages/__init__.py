"""Thin entry points for the DVC stages: each reads its part of params.yaml and calls the library."""
from pipeline import PipelineError


def run_name(argv, section):
    """The one argument of a foreach stage: a name under `section` in params.yaml (stage_params checks it is there)."""
    if len(argv) != 1:
        raise PipelineError(f"usage: python -m pipeline.stages.<stage> NAME (a name under {section}: in params.yaml)")
    return argv[0]
