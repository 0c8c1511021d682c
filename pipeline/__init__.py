"""Transfer-learning classifiers for small image sets: a pretrained backbone's features, compared heads.

Importing the package loads no TensorFlow: modules that run a network import it through
pipeline.quiet_keras.
"""


class PipelineError(Exception):
    """A problem the user can fix; its message says what is wrong and what to do."""
