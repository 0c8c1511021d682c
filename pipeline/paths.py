"""Where the stages write, relative to the project folder (dvc.yaml names the same paths)."""
from pathlib import Path

MANIFEST = Path("data/manifest.csv")
SKIPPED = Path("data/skipped.csv")
DUPLICATES = Path("data/duplicates.csv")
FEATURES = Path("features")
# Per-image features by content (pipeline/features/cache.py), and beside them the engines' converted models
# and weights digests (pipeline/features/extraction.py). Not a DVC output: DVC empties those before a
# stage runs, and this must outlive runs. Safe to delete; it only costs re-extraction.
CACHE = Path("cache")
FEATURE_CACHE = CACHE / "features"
MODELS = Path("models")
RESULTS = Path("results")
REPORTS = Path("reports")
CHOSEN = REPORTS / "chosen.json"  # the row the report chose, and its model files: what predict uses by default
EXPORTED = MODELS / "chosen.onnx"  # python -m pipeline.export's default: the chosen row as one ONNX file


def features_file(split):
    return FEATURES / f"{split}.h5"


def model_file(row):
    return MODELS / f"{row}.model"


def metrics_file(row):
    return RESULTS / row / "metrics.json"


def predictions_file(row):
    return RESULTS / row / "predictions.csv"


def out_of_fold_file(head):
    """Cross-validation's probabilities for every training image (heads only)."""
    return RESULTS / head / "out_of_fold.csv"


def selection_file(row):
    """A row without CV's probabilities on the selection images (pipeline.modeling.selection_images)."""
    return RESULTS / row / "selection.csv"
