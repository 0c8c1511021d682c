"""Stage features: VGG16 bottleneck features of every split, one HDF5 file each."""
from pathlib import Path

import pandas as pd

from pipeline import backbone, data, features, paths
from pipeline.config import load_params
from pipeline.stages import entry_point


@entry_point
def main(argv):
    params = load_params()
    settings = params["backbone"]
    manifest = pd.read_csv(paths.MANIFEST, dtype=str)
    classes = data.class_names(manifest)
    model = backbone.build(settings["weights"], settings["input_size"], settings["pooling"])
    meta = features.describe(model, settings)
    root = Path(params["data"]["dir"])
    for split in data.SPLITS:
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            continue
        speed = features.write_split(
            paths.features_file(split), model,
            files=[root / p for p in rows["path"]],
            labels=[classes.index(label) for label in rows["label"]],
            rel_paths=list(rows["path"]), classes=classes, meta={**meta, "split": split},
            batch_size=settings["batch_size"],
        )
        print(f"{split}: {len(rows)} images, {speed:.1f} images/s")


if __name__ == "__main__":
    main()
