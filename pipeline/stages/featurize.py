"""Stage features: VGG16 features (and block 4's output) of every split, one HDF5 file each."""
from pathlib import Path

from pipeline import augment, backbone, data, features, paths
from pipeline.config import stage_params
from pipeline.stages import entry_point

# What dvc.yaml's features stage lists. augment.seed, not evaluate.seed, decides the copies, so a
# new CV seed does not re-extract anything.
PARAMS = ("data.dir", "backbone.weights", "backbone.input_size", "backbone.pooling", "augment", "evaluate.tta")
SPEED_ONLY = ("backbone.batch_size",)  # read too, but no feature depends on it (tests/test_features.py)


@entry_point
def main(argv):
    params = stage_params(PARAMS + SPEED_ONLY)
    settings, augmentation = params["backbone"], params["augment"]
    manifest = data.read_manifest(paths.MANIFEST)
    classes = data.class_names(manifest)
    base = backbone.conv_base(settings["weights"], settings["input_size"])
    model = backbone.extractor(base, settings["pooling"])
    meta = features.describe(base, settings)
    heldout = data.heldout_split(manifest["split"])
    root = Path(params["data"]["dir"])
    for split in data.SPLITS:
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            continue
        copies = augmentation["copies"] if split == "train" else 0  # held-out images stay as they are
        speed = features.write_split(
            paths.features_file(split), model,
            files=[root / p for p in rows["path"]],
            labels=[classes.index(label) for label in rows["label"]],
            rel_paths=list(rows["path"]), classes=classes, meta={**meta, "split": split},
            batch_size=settings["batch_size"],
            copies=augment.Copies(augmentation, copies, augmentation["seed"]), keys=list(rows["sha256"]),
            mirrored=params["evaluate"]["tta"] and split == heldout,
        )
        print(f"{split}: {len(rows)} images (+{copies} augmented copies each), {speed:.1f} images/s")


if __name__ == "__main__":
    main()
