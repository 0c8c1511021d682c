"""Stage prepare: list the images of data.dir, find copies of one image, split them, and record the manifest."""
from pathlib import Path

from pipeline import paths
from pipeline.cli import entry_point
from pipeline.config import stage_params
from pipeline.data import catalog, duplicates
from pipeline.files import write_csv

PARAMS = ("data", "evaluate.folds")  # what dvc.yaml's prepare stage lists


@entry_point
def main(argv):
    params = stage_params(PARAMS)
    settings = params["data"]
    root = Path(settings["dir"])
    catalog.check_fractions(settings["split"]["validation"], settings["split"]["test"])
    manifest, skipped = catalog.find_images(root)
    manifest["sha256"] = [duplicates.content_hash(root / path) for path in manifest["path"]]
    found = duplicates.find_duplicates(root, manifest, settings["duplicates"]["max_distance"])
    if manifest["split"].isna().all():  # an unsplit folder: split by content, copies on one side
        manifest["split"] = catalog.content_split(manifest, found, **settings["split"])
        found["split"] = found["path"].map(dict(zip(manifest["path"], manifest["split"])))
    catalog.check_classes(manifest, params["evaluate"]["folds"])
    # A held-out image that copies a training image would score the model on what it trained on.
    left_out = duplicates.heldout_copies(found) if settings["duplicates"]["heldout"] == "drop" else set()
    found["left_out"] = found["path"].isin(left_out)
    manifest = manifest[~manifest["path"].isin(left_out)].reset_index(drop=True)
    write_csv(paths.MANIFEST, manifest)
    write_csv(paths.SKIPPED, skipped)
    write_csv(paths.DUPLICATES, found)
    print(manifest.groupby(["split", "label"]).size().unstack(fill_value=0).to_string())
    print(f"{len(manifest)} images, {len(skipped)} skipped (listed in {paths.SKIPPED} with what to do), "
          f"{found['group'].nunique()} groups of copies (in {paths.DUPLICATES}), "
          f"{len(left_out)} held-out copies of training images left out")


if __name__ == "__main__":
    main()
