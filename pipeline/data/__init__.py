"""Finding, reading and checking the images: the catalogue and its split, copies of one image, augmentation."""
