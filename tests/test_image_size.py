from PIL import Image

from pipeline.data import image_size


def write_images(folder, sizes):
    files = []
    for index, (width, height) in enumerate(sizes):
        files.append(folder / f"{index}.jpg")
        Image.new("RGB", (width, height), (index % 255, 90, 0)).save(files[-1])
    return files


def test_auto_keeps_150_px_for_photos_of_about_200_px_and_takes_224_for_larger_ones(tmp_path):
    assert image_size.resolve("auto", write_images(tmp_path, [(200, 200)] * 5 + [(640, 480)] * 2)) == 150
    assert image_size.resolve("auto", write_images(tmp_path, [(500, 370)] * 5 + [(120, 90)] * 2)) == 224
    assert image_size.resolve("auto", write_images(tmp_path, [(300, 300)] * 3)) == 150  # 150 is exactly half


def test_a_size_given_in_pixels_is_kept_without_reading_an_image():
    assert image_size.resolve(96, ["no/such/file.jpg"]) == 96


def test_the_median_is_over_the_shorter_sides_and_read_from_headers(tmp_path):
    files = write_images(tmp_path, [(640, 480), (100, 900), (300, 400)])
    assert image_size.median_shorter_side(files) == 300


def test_a_sample_is_the_same_on_every_run_and_keeps_the_order():
    items = list(range(1000))
    chosen = image_size.sample(items, size=50)
    assert chosen == image_size.sample(items, size=50) and chosen == sorted(chosen) and len(set(chosen)) == 50
    assert image_size.sample(items[:10], size=50) == items[:10]
