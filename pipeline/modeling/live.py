"""Learning curves in DVCLive's layout, which `dvc plots show`, `dvc exp show` and DVC's VS Code extension read.

A stage opens `logging_to(directory(row))` around its training; every Keras fit inside it
(pipeline.modeling.networks.train) then logs there while it runs, as DVCLive's Keras callback would:
`plots/metrics/train/loss.tsv`, `plots/metrics/eval/loss.tsv` (the early-stopping data), the same for accuracy,
one row per epoch (`step`: the epoch, from 0), and `metrics.json`. Each fit starts the directory afresh, so after a
head's CV folds and its final fit, in that order, only the final fit's curves remain.
Nothing here loads TensorFlow or Keras.
"""
import contextlib
import functools
import os
import shutil
from pathlib import Path

import pandas as pd

from pipeline import paths

_logging_to = None  # (directory, dvc.yaml for DVCLive to write or None) while a stage's block is open


def directory(row):
    """Where a row's curves go."""
    return paths.RESULTS / row / "live"


def own_dvcyaml(row):
    """The dvc.yaml naming a row's curves for DVC when its stage cannot (pipeline.stages.train)."""
    return paths.RESULTS / row / "dvc.yaml"


@contextlib.contextmanager
def logging_to(path, dvcyaml=None):
    """Keras fits in the block log to `path`, emptied first: a row that trains no Keras model any more keeps none.

    `dvcyaml`: a dvc.yaml (beside `path`) where DVCLive names its plots and metrics, for a stage that cannot
    declare them in the project's dvc.yaml (train@, one stage for every head type, only dense heads have
    curves, and DVC fails a stage whose declared output is missing); it goes with the curves.
    """
    global _logging_to
    shutil.rmtree(path, ignore_errors=True)
    if dvcyaml is not None:
        Path(dvcyaml).unlink(missing_ok=True)
    _logging_to = (Path(path), dvcyaml)
    try:
        yield
    finally:
        _logging_to = None


def start():
    """A Curves for the fit about to run, or None outside a logging_to block."""
    return None if _logging_to is None else Curves(*_logging_to)


class Curves:
    """One fit's log. Its summary (metrics.json) is the epoch whose weights the model keeps, not the last one."""

    def __init__(self, path, dvcyaml=None):
        # No experiment of its own (the stage's `dvc exp run` makes it) and no dvc.yaml unless asked:
        # the project's dvc.yaml declares these files.
        self.live = live_class()(str(path), save_dvc_exp=False, dvcyaml=None if dvcyaml is None else str(dvcyaml))
        self.epochs = []

    def epoch_end(self, logs):
        """Log one epoch's Keras logs (loss, accuracy, val_loss, val_accuracy)."""
        from dvclive.utils import standardize_metric_name

        values = {standardize_metric_name(name, "dvclive.keras"): float(value) for name, value in logs.items()}
        for name, value in values.items():
            self.live.log_metric(name, value)
        self.epochs.append(values)
        self.live.next_step()

    def end(self, kept_epoch):
        """Finish the log, its summary the values of epoch `kept_epoch` (from 0), whose weights the model keeps."""
        if self.epochs:
            self.live.summary = {}
            for name, value in self.epochs[kept_epoch].items():
                self.live.log_metric(name, value, plot=False)
            self.live.summary["step"] = kept_epoch
        self.live.end()


@functools.cache
def live_class():
    """dvclive.Live, looking for the DVC project only inside `dvc exp run`, where it adds its files to git.

    Elsewhere nothing needs it, and DVCLive 3.49's look would `dvc init` an enclosing git repository that is no
    DVC project, fail in a git repository without a commit, and open the project at every fit.
    """
    from dvclive import Live, env

    class LiveInExperiments(Live):
        def _init_dvc(self):
            if os.getenv(env.DVC_EXP_BASELINE_REV):  # set by `dvc exp run` for its stages
                super()._init_dvc()
            else:
                self._dvc_file = self._init_dvc_file()  # all the rest of _init_dvc sets up

    return LiveInExperiments


def read_curves(path):
    """The logged curves as Keras named them (epoch from 1, loss, val_loss, accuracy, val_accuracy), or None.

    Only epochs that every curve reached: a run stopped between two files' rows shows no half epoch.
    """
    files = sorted(Path(path, "plots", "metrics").glob("*/*.tsv"))
    if not files:
        return None
    curves = None
    for file in files:
        split, metric = file.parent.name, file.stem
        column = metric if split == "train" else f"val_{metric}"
        curve = pd.read_csv(file, sep="\t").dropna().rename(columns={metric: column})[["step", column]]
        curves = curve if curves is None else curves.merge(curve, on="step")
    return curves.assign(epoch=curves["step"] + 1).drop(columns="step")
