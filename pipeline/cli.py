"""What every command shares (the DVC stages, predict, benchmark): a PipelineError ends it as one line, status 2."""
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
