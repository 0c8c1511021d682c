"""Stage prepare: list the images of data.dir, split them, and record the manifest."""
from pipeline import data, paths
from pipeline.config import load_params
from pipeline.files import write_csv
from pipeline.stages import entry_point


@entry_point
def main(argv):
    params = load_params()["data"]
    manifest, skipped = data.find_images(params["dir"], **params["split"])
    write_csv(paths.MANIFEST, manifest)
    write_csv(paths.SKIPPED, skipped)
    print(manifest.groupby(["split", "label"]).size().unstack(fill_value=0).to_string())
    print(f"{len(manifest)} images, {len(skipped)} skipped (listed in {paths.SKIPPED})")


if __name__ == "__main__":
    main()
