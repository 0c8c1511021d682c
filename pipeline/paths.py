"""Where the stages write, relative to the project folder (dvc.yaml names the same paths)."""
from pathlib import Path

MANIFEST = Path("data/manifest.csv")
SKIPPED = Path("data/skipped.csv")
FEATURES = Path("features")
MODELS = Path("models")
RESULTS = Path("results")
REPORTS = Path("reports")


def features_file(split):
    return FEATURES / f"{split}.h5"


def model_file(head):
    return MODELS / f"{head}.joblib"


def metrics_file(head):
    return RESULTS / head / "metrics.json"


def predictions_file(head):
    return RESULTS / head / "predictions.csv"
