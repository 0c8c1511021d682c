"""Transfer-learning classifiers for small image sets: VGG16 features, compared heads."""
import logging
import os

# TensorFlow's C++ start-up lines (CUDA probing on CPU machines, oneDNN notes) drown the
# pipeline's own output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Batches of other sizes (copies, mirror images, the last batch) retrace tf.functions, which
# TensorFlow reports at length as if it were a problem; it costs a second per new shape.
logging.getLogger("tensorflow").setLevel(logging.ERROR)


class PipelineError(Exception):
    """A problem the user can fix; its message says what is wrong and what to do."""
