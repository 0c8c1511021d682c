"""Thin entry points for the DVC stages: each reads its part of params.yaml and calls the library."""
import functools
import sys
import warnings

from pipeline import PipelineError


def one_line_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def entry_point(main):
    """Run `main`, turning a PipelineError into one line on stderr and exit status 2."""
    @functools.wraps(main)
    def run(argv=None):
        warnings.formatwarning = one_line_warning
        try:
            main(sys.argv[1:] if argv is None else argv)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
    return run


def run_name(argv, section):
    """The one argument of a foreach stage: a name under `section` in params.yaml (stage_params checks it is there)."""
    if len(argv) != 1:
        raise PipelineError(f"usage: python -m pipeline.stages.<stage> NAME (a name under {section}: in params.yaml)")
    return argv[0]
