"""Keras, imported with TensorFlow's start-up noise filtered out: `from pipeline.quiet_keras import keras`.

Only the modules that run a network import this, so `prepare`, `report` and the scikit-learn heads
start without waiting for TensorFlow to load.
"""
import contextlib
import logging
import os
import sys
import tempfile

# TensorFlow's C++ start-up lines (CUDA probing on CPU machines, oneDNN notes) drown the
# pipeline's own output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Batches of other sizes (copies, mirror images, the last batch) retrace tf.functions, which
# TensorFlow reports at length as if it were a problem; it costs a second per new shape.
logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextlib.contextmanager
def stderr_without(is_noise):
    """Capture what C++ code writes to file descriptor 2 in the block; pass on the lines that are not noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.writelines(line for line in captured.read().decode(errors="replace").splitlines(True)
                                  if not is_noise(line))


def tensorflow_info(line):
    """absl's info lines at import ("I0000 ... oneDNN custom operations are on") and its note on them.

    TensorFlow 2.19 and later print them on CPUs with oneDNN whatever TF_CPP_MIN_LOG_LEVEL says,
    so they are dropped here instead; warnings and errors pass.
    """
    return line.startswith(("I0000 ", "WARNING: All log messages before absl::InitializeLog()"))


with stderr_without(tensorflow_info):
    # Both load here, under the filter; the other modules import them from this one.
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
