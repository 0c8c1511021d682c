"""Learning curves in DVCLive's layout, which `dvc plots show`, `dvc exp show` and DVC's VS Code extension read.

A stage hands its Keras fits a Folder (`curves=` of their fit); each fit
(pipeline.modeling.networks.train) then logs there through DVCLive's public Live while it runs, as DVCLive's
Keras callback would: `plots/metrics/train/loss.tsv`, `plots/metrics/eval/loss.tsv` (the early-stopping data),
the same for accuracy, one row per epoch (`step`: the epoch, from 0), and `metrics.json`. Each fit opens a new
Live, which empties the folder's curves first, so a folder that saw several fits keeps only the last one's.
Nothing here loads TensorFlow or Keras.
"""
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import PipelineError, paths


def directory(row):
    """Where a row's curves go."""
    return paths.RESULTS / row / "live"


def own_dvcyaml(row):
    """The dvc.yaml naming a row's curves for DVC when its stage cannot (pipeline.stages.train)."""
    return paths.RESULTS / row / "dvc.yaml"


@dataclass(frozen=True)
class Folder:
    """Where a row's Keras fits log their curves, and the dvc.yaml (beside it) naming them for DVC, if any.

    `dvcyaml` is for a stage that cannot declare the curves in the project's dvc.yaml (train@: one stage for
    every head type, only dense heads have curves, and DVC fails a stage whose declared output is missing).
    """
    path: Path
    dvcyaml: Path | None = None

    def open(self):
        """One fit's Curves: its Live empties the folder's curves, so each fit starts them afresh."""
        return Curves(self.path, self.dvcyaml)


def emptied(path, dvcyaml=None):
    """A Folder at `path`, emptied of any earlier run's curves: a row that trains no Keras model any more keeps none."""
    shutil.rmtree(path, ignore_errors=True)
    if dvcyaml is not None:
        Path(dvcyaml).unlink(missing_ok=True)
    return Folder(Path(path), dvcyaml)


class Curves:
    """One fit's log. Its summary (metrics.json) is the epoch whose weights the model keeps, not the last one."""

    def __init__(self, path, dvcyaml=None):
        # No experiment of its own (the stage's `dvc exp run` makes it) and no dvc.yaml unless asked:
        # the project's dvc.yaml declares these files.
        from dvclive import Live
        from scmrepo.exceptions import SCMError

        try:
            self.live = Live(str(path), save_dvc_exp=False, dvcyaml=None if dvcyaml is None else str(dvcyaml))
        except SCMError as error:  # DVCLive reads the commit it logs against, and a new repository has none
            raise PipelineError(f"DVCLive cannot log learning curves here ({error}): "
                                "commit once (git commit), then run again") from error
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
