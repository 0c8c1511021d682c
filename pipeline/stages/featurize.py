"""Stage features: the backbone's features (and its intermediate output) of every split, one HDF5 file each.

Only images the per-image cache lacks go through the backbone, which is loaded only then; the split
files are assembled from the cache. With several backbones, each fills its own cache and the files
hold their fused features (features.fusion).
"""
import resource
import time
from pathlib import Path

import numpy as np

from pipeline import paths
from pipeline.cli import entry_point
from pipeline.config import stage_params
from pipeline.data import augment, catalog, image_size
from pipeline.features import backbone, engines, extraction, fusion, runners, store
from pipeline.features.cache import FeatureCache

# What dvc.yaml's features stage lists. augment.seed, not evaluate.seed, decides the copies, so a
# new CV seed does not re-extract anything.
PARAMS = ("data.dir", "backbone.name", "backbone.weights", "backbone.input_size", "backbone.pooling", "backbone.engine",
          "backbone.precision", "augment", "evaluate.tta")
# Read too, but no feature depends on them (tests/test_store.py, tests/test_runners.py).
SPEED_ONLY = ("backbone.batch_size", "backbone.runner")


@entry_point
def main(argv):
    params = stage_params(PARAMS + SPEED_ONLY)
    settings, augmentation = params["backbone"], params["augment"]
    names = backbone.names(settings["name"])
    fusion.check_weights(names, settings["weights"])
    runners.check(settings["runner"])
    engine, precision = engines.resolve(settings["engine"], settings["precision"])
    manifest = catalog.read_manifest(paths.MANIFEST)
    classes = catalog.class_names(manifest)
    heldout = catalog.heldout_split(manifest["split"])
    root = Path(params["data"]["dir"])
    size = image_size.resolve(settings["input_size"], catalog.split_files(manifest, "train", root))
    # Each backbone keeps its own per-image cache, so adding one to a fusion extracts only that one.
    extractors = [extraction.Extractor(backbone.weights_source(settings["weights"], name), size,
                                       backbone.pooling_for(settings["pooling"], name), engine, precision, name,
                                       cache_root=paths.CACHE.resolve()) for name in names]
    if precision == "int8":  # quantized on training images only (pipeline.features.quantization)
        training = manifest[manifest["split"] == "train"]
        extractors = [extractor.calibrated(list(training["sha256"]), [root / p for p in training["path"]])
                      for extractor in extractors]
    caches = [FeatureCache(paths.FEATURE_CACHE, extractor.provenance()) for extractor in extractors]
    provenance = None
    print(f"{fusion.name(names)} on {engine} at {precision}, {size} px")
    for split in catalog.SPLITS:
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            continue
        started = time.perf_counter()
        count = augmentation["copies"] if split == "train" else 0  # held-out images stay as they are
        copies = augment.Copies(augmentation, count, augmentation["seed"])
        views = extraction.views(copies, mirrored=params["evaluate"]["tta"] and split == heldout)
        keys = list(rows["sha256"])
        files = [root / p for p in rows["path"]]
        extracted = runners.extract(settings["runner"], list(zip(extractors, caches)), views, files, keys,
                                    settings["batch_size"], desc=split)
        flips = augmentation["horizontal_flip"] or params["evaluate"]["tta"]
        sample = mirror_sample(settings, extractors, caches, root, rows) if split == "train" and flips else {}
        if split == "train" and precision == "int8":  # what a head's saved model will predict with
            sample.update(store.network_datasets({extractor.backbone: extractor.saved_network()
                                                  for extractor in extractors}))
        seconds = time.perf_counter() - started
        provenance = provenance or fusion.provenance([{**cache.provenance, "feature_width": width(cache, keys[0])}
                                                      for cache in caches])
        store.write(paths.features_file(split), fusion.rows([cache.rows(views, keys) for cache in caches]),
                    labels=[classes.index(label) for label in rows["label"]], rel_paths=list(rows["path"]),
                    classes=classes, started=started, extra=sample,
                    meta={**provenance, "weights": settings["weights"], "split": split,
                          "augmented_copies": copies.count, "extracted": extracted})
        speed = f", {extracted / seconds:.1f} images/s" if extracted else ""
        print(f"{split}: {len(rows)} images (+{copies.count} augmented copies each); "
              f"{extracted} extracted now{speed}, the rest from the cache")  # copies of one image count once
    # Linux counts in KiB. Splits stream through the cache in shards, so this should not grow with the data.
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def width(cache, key):
    """The width of a backbone's pooled features (where its block ends in fused ones), from an image in its cache:
    known without loading the network."""
    return next(cache.gather(extraction.IMAGE.id, [key]))["features"].shape[-1]


def mirror_sample(settings, extractors, caches, root, rows):
    """The mirror images' features of a sample of training images (manifest `rows`), as store.write's extra.

    Where flips are on, the report asks whether a mirror image still shows its class; answering from
    training images keeps every warning off the held-out split (pipeline.report.setting_warnings).
    """
    picked = store.mirror_sample_rows(list(rows["sha256"]))
    sample = rows.iloc[picked]
    keys = list(sample["sha256"])
    files = [root / p for p in sample["path"]]
    extracted = runners.extract(settings["runner"], list(zip(extractors, caches)), [extraction.FLIPPED], files, keys,
                                settings["batch_size"])
    print(f"the mirror images of {len(keys)} training images, for the report's flip check: {extracted} extracted now")
    chunks = fusion.rows([cache.rows([extraction.FLIPPED], keys) for cache in caches])
    mirrored = np.concatenate([chunk["features_flipped"] for chunk in chunks])
    return {store.SAMPLE_ROWS: picked, "features_flipped_sample": mirrored}


if __name__ == "__main__":
    main()
