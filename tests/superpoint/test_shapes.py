"""Synthetic Shapes (SuperPoint §4, Fig. 4): generator determinism and geometry, the rpautrat dump layout, bad inputs,
and the stamped one-time publication of a whole set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.superpoint import shapes, shapes_format
from torchrepro.superpoint.shapes import PRIMITIVES, generate_shape, write_shapes
from torchrepro.superpoint.shapes_format import list_samples, read_sample, write_sample

SIZE = (120, 160)
WITH_JUNCTIONS = ("draw_lines", "draw_polygon", "draw_multiple_polygons", "draw_star", "draw_checkerboard",
                  "draw_stripes", "draw_cube")


# ------------------------------------------------------------------------------------------------- generator
@pytest.mark.parametrize("primitive", PRIMITIVES)
def test_generate_shape_is_deterministic_and_well_formed(primitive: str) -> None:
    image, points = generate_shape(primitive, 7)
    again_image, again_points = generate_shape(primitive, 7)
    other_image, _ = generate_shape(primitive, 8)
    assert image.dtype == np.uint8 and image.shape == SIZE
    assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 2
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(points, again_points)
    assert not np.array_equal(image, other_image)
    # on the output's pixel grid, so a keypoint map built by rounding never needs clipping
    assert np.all((points >= 0) & (points <= np.array([SIZE[1] - 1, SIZE[0] - 1])))


def test_points_only_where_the_reference_has_them() -> None:
    """Ellipses and noise have no junctions; the shapes with junctions almost always keep some in view."""
    for primitive in ("draw_ellipses", "gaussian_noise"):
        assert all(len(generate_shape(primitive, s)[1]) == 0 for s in range(5))
    for primitive in WITH_JUNCTIONS:
        counts = [len(generate_shape(primitive, s)[1]) for s in range(10)]
        assert sum(c > 0 for c in counts) >= 6, (primitive, counts)  # stripes' ends often leave the image
    # the cube shows 7 corners, never its hidden 8th (only corners that leave the image are lost)
    assert max(len(generate_shape("draw_cube", s)[1]) for s in range(20)) == 7


def _corner_scores(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max min-eigenvalue (Shi-Tomasi) response in the 3x3 window at each point, over the image's median response
    and over the image's maximum response."""
    response = cv2.cornerMinEigenVal(image.astype(np.float32), 3, 3)
    local_max = cv2.dilate(response, np.ones((3, 3), np.uint8))
    cols = np.clip(np.round(points[:, 0]).astype(int), 0, image.shape[1] - 1)
    rows = np.clip(np.round(points[:, 1]).astype(int), 0, image.shape[0] - 1)
    values = local_max[rows, cols]
    return values / max(float(np.median(response)), 1e-6), values / float(response.max())


@pytest.mark.parametrize("primitive", WITH_JUNCTIONS)
def test_points_sit_on_corners(primitive: str) -> None:
    """Every ground-truth point is a strong corner (>= 10x the median response) and most are among the image's
    strongest (>= 5 % of its maximum), while the same points moved by (4, 4) px mostly are not."""
    over_median, over_max, shifted_over_max = [], [], []
    for seed in range(12):
        image, points = generate_shape(primitive, seed)
        median_ratio, max_ratio = _corner_scores(image, points)
        over_median.append(median_ratio)
        over_max.append(max_ratio)
        shifted_over_max.append(_corner_scores(image, points + 4.0)[1])
    over_median = np.concatenate(over_median)
    strong = np.concatenate(over_max) >= 0.05
    shifted_strong = np.concatenate(shifted_over_max) >= 0.05
    # Multiple polygons are filled with blob textures that may fade into the background at a corner (as in the
    # reference), and the textures respond too: a few weak corners are expected there.
    if primitive == "draw_multiple_polygons":
        assert (over_median >= 10).mean() >= 0.95 and over_median.min() >= 2, over_median.min()
    else:
        assert np.all(over_median >= 10), over_median[over_median < 10]
    assert strong.mean() >= 0.85, strong.mean()
    assert strong.mean() - shifted_strong.mean() >= 0.6, "the check does not tell corners from their surroundings"


def test_hand_made_polygon_points_are_its_vertices_scaled() -> None:
    """A known quadrilateral drawn large: its points are its vertices through the resize's pixel-centre mapping."""
    canvas = np.full((480, 640), 40, np.uint8)
    vertices = np.array([[100, 80], [520, 120], [500, 400], [120, 380]], np.float64)
    drawn = shapes.fill_polygon(canvas, vertices, 220)
    np.testing.assert_array_equal(drawn, vertices)
    assert canvas[200, 280] == 220 and canvas[20, 20] == 40  # inside filled, outside untouched
    image, points = shapes.downsample(canvas, drawn, SIZE)
    np.testing.assert_allclose(points, (vertices + 0.5) / 4 - 0.5, atol=1e-5)  # 4x smaller, pixel centres
    response = cv2.cornerMinEigenVal(image.astype(np.float32), 3, 3)
    for x, y in points:  # the strongest corner response near each vertex is within a pixel of it
        r0, c0 = int(round(y)) - 4, int(round(x)) - 4
        window = response[r0:r0 + 9, c0:c0 + 9]
        peak_row, peak_col = np.unravel_index(np.argmax(window), window.shape)
        assert abs(c0 + peak_col - x) <= 1.5 and abs(r0 + peak_row - y) <= 1.5


def test_polygon_through_drawing_function_matches_its_own_vertices() -> None:
    """draw_polygon with a fixed seed returns exactly the vertices it filled (checked on a blank canvas)."""
    canvas = np.zeros((480, 640), np.uint8)
    points = shapes.draw_polygon(np.random.default_rng(3), canvas)
    assert len(points) >= 3 and np.array_equal(points, np.round(points))
    assert all(canvas[int(y), int(x)] > 0 for x, y in points)  # each vertex pixel is painted
    contours, _ = cv2.findContours((canvas > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = np.concatenate(contours).reshape(-1, 2)
    for point in points:  # and lies on the painted shape's outline
        assert np.min(np.abs(outline - point).max(axis=1)) <= 1


def test_cube_hidden_corner_is_inside_the_drawn_faces() -> None:
    """Corner 0 (not a point) is covered by the three drawn faces; corner 7 (a point) is the inner Y-junction."""
    for seed in range(200):
        corners = shapes.cube_corners(np.random.default_rng(seed), (480, 640)).astype(np.float32)
        hull = cv2.convexHull(corners.reshape(-1, 1, 2))
        assert cv2.pointPolygonTest(hull, tuple(map(float, corners[0])), True) > 0
        assert cv2.pointPolygonTest(hull, tuple(map(float, corners[7])), True) > 0


def test_multiple_polygons_never_cover_an_earlier_corner() -> None:
    """Every returned polygon corner is visible: no later polygon is painted over it."""
    for seed in range(10):
        rng = np.random.default_rng(seed)
        canvas = np.zeros((480, 640), np.uint8)
        points = shapes.draw_multiple_polygons(rng, canvas)
        assert len(points) >= 3
        assert np.all(canvas[points[:, 1].astype(int), points[:, 0].astype(int)] > 0)
        assert len(np.unique(points, axis=0)) == len(points)


def test_generation_size_defaults_to_the_reference_ratio() -> None:
    assert shapes.generation_size_for((120, 160)) == shapes.DEFAULT_GENERATION_SIZE == (480, 640)
    assert shapes.generation_size_for((240, 320)) == shapes.REFERENCE_GENERATION_SIZE  # the reference's own pair
    assert shapes.generation_size_for((32, 48)) == (256, 384)  # tiny outputs: the canvas keeps a 240 px side
    image, points = generate_shape("draw_checkerboard", 0, size=(32, 48))
    assert image.shape == (32, 48) and np.all(points <= [47, 31])
    explicit, _ = generate_shape("draw_star", 0, generation_size=(960, 1280))
    assert explicit.shape == SIZE and not np.array_equal(explicit, generate_shape("draw_star", 0)[0])


def test_generate_shape_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="draw_circles"):
        generate_shape("draw_circles", 0)
    with pytest.raises(ConfigError, match="generation_size"):
        generate_shape("draw_star", 0, size=(240, 320), generation_size=(120, 160))


# ---------------------------------------------------------------------------------------------------- format
def test_round_trip_keeps_xy_in_memory_and_yx_on_disk(tmp_path: Path) -> None:
    image, points = generate_shape("draw_checkerboard", 1)
    assert len(points) > 3
    image_path, points_path = write_sample(tmp_path, "draw_checkerboard", "training", 0, image, points)
    assert image_path == tmp_path / "draw_checkerboard" / "images" / "training" / "0.png"
    assert points_path == tmp_path / "draw_checkerboard" / "points" / "training" / "0.npy"
    on_disk = np.load(points_path)
    assert on_disk.shape == points.shape and on_disk.dtype == np.float64
    np.testing.assert_array_equal(on_disk, points[:, ::-1])  # (row, col) = (y, x), as rpautrat stores them
    assert list_samples(tmp_path, "training") == [(image_path, points_path)]
    read_image, read_points = read_sample(image_path, points_path)
    np.testing.assert_array_equal(read_image, image)
    np.testing.assert_array_equal(read_points, points)
    assert read_points.dtype == np.float32


def test_list_samples_sorts_by_primitive_order_then_numeric_index(tmp_path: Path) -> None:
    image = np.zeros((8, 8), np.uint8)
    for primitive in ("draw_star", "draw_lines"):
        for index in (10, 2, 1):
            write_sample(tmp_path, primitive, "test", index, image, np.zeros((0, 2)))
    names = [(p.parts[-4], p.name) for p, _ in list_samples(tmp_path, "test")]
    assert names == [("draw_lines", "1.png"), ("draw_lines", "2.png"), ("draw_lines", "10.png"),
                     ("draw_star", "1.png"), ("draw_star", "2.png"), ("draw_star", "10.png")]
    only = list_samples(tmp_path, "test", primitives=["draw_star"])
    assert [p.parts[-4] for p, _ in only] == ["draw_star"] * 3
    empty_points = read_sample(*only[0])[1]
    assert empty_points.shape == (0, 2)


def test_reader_does_not_import_the_generator() -> None:
    source = Path(shapes_format.__file__).read_text()
    assert "superpoint.shapes import" not in source and "import shapes" not in source


def _one_sample(root: Path) -> tuple[Path, Path]:
    return write_sample(root, "draw_polygon", "validation", 0, np.zeros((12, 16), np.uint8), np.array([[3.0, 4.0]]))


def test_non_image_file_in_images_folder(tmp_path: Path) -> None:
    image_path, _ = _one_sample(tmp_path)
    stray = image_path.parent / "notes.txt"
    stray.write_text("hello")
    with pytest.raises(DataError, match="notes.txt"):
        list_samples(tmp_path, "validation")


def test_image_without_points_file(tmp_path: Path) -> None:
    _, points_path = _one_sample(tmp_path)
    points_path.unlink()
    with pytest.raises(DataError, match=r"0\.png has no points file.*0\.npy"):
        list_samples(tmp_path, "validation")


def test_points_outside_the_image(tmp_path: Path) -> None:
    image_path, points_path = _one_sample(tmp_path)
    np.save(points_path, np.array([[4.0, 3.0], [5.0, 16.0]]))  # (row, col): the 2nd is at x=16 in a 16 px wide image
    with pytest.raises(DataError) as err:
        read_sample(image_path, points_path)
    message = str(err.value)
    assert str(points_path) in message and "x=16.00, y=5.00" in message and "16x12" in message
    with pytest.raises(DataError, match="outside"):  # the writer refuses to write such a sample at all
        write_sample(tmp_path, "draw_polygon", "test", 0, np.zeros((12, 16), np.uint8), np.array([[16.0, 5.0]]))


def test_points_array_of_wrong_shape(tmp_path: Path) -> None:
    image_path, points_path = _one_sample(tmp_path)
    np.save(points_path, np.zeros((4, 3)))
    with pytest.raises(DataError, match=rf"{points_path.name}.*shape \[N, 2\].*\[4, 3\]"):
        read_sample(image_path, points_path)


def test_unreadable_image_and_points(tmp_path: Path) -> None:
    image_path, points_path = _one_sample(tmp_path)
    points_path.write_bytes(b"not numpy")
    with pytest.raises(DataError, match=points_path.name):
        read_sample(image_path, points_path)
    image_path.write_bytes(b"not a png")
    with pytest.raises(DataError, match=image_path.name):
        read_sample(image_path, points_path)


def test_empty_split_names_folder_and_primitives(tmp_path: Path) -> None:
    _one_sample(tmp_path)  # validation exists, training does not
    with pytest.raises(DataError) as err:
        list_samples(tmp_path, "training")
    assert str(tmp_path) in str(err.value) and "images/training" in str(err.value)
    assert "draw_polygon" in str(err.value)
    with pytest.raises(DataError, match="draw_cube"):  # an asked-for primitive that is not there
        list_samples(tmp_path, "validation", primitives=["draw_cube"])
    with pytest.raises(DataError, match="split"):
        list_samples(tmp_path, "train")


# ------------------------------------------------------------------------------------------------- whole set
def _digests(root: Path, split: str) -> set[str]:
    return {hashlib.sha1(image.read_bytes()).hexdigest() for image, _ in list_samples(root, split)}


def test_write_shapes_once_stamped_and_disjoint(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    counts = {"training": 3, "validation": 2, "test": 2}
    primitives = ("draw_polygon", "draw_star", "gaussian_noise")
    first = write_shapes(root, counts, seed=5, size=SIZE, primitives=primitives)
    assert first["generated"] is True and first["num_images"] == 3 * 7
    assert first["images"]["gaussian_noise"] == counts  # noise gets its equal share, as in the reference
    assert first["points"]["gaussian_noise"] == {"training": 0, "validation": 0, "test": 0}
    assert first["num_points"] == sum(len(read_sample(*s)[1]) for split in counts for s in list_samples(root, split))
    stamp = json.loads((root / "generated.json").read_text())
    assert stamp["version"] == shapes.GENERATOR_VERSION and stamp["params"]["seed"] == 5
    mtime = (root / "generated.json").stat().st_mtime_ns

    again = write_shapes(root, counts, seed=5, size=SIZE, primitives=primitives)
    assert again["generated"] is False and again["num_points"] == first["num_points"]
    assert (root / "generated.json").stat().st_mtime_ns == mtime

    splits = {split: _digests(root, split) for split in counts}
    assert [len(splits[s]) for s in counts] == [3 * 3, 2 * 3, 2 * 3]  # no repeats within a split
    assert not (splits["training"] & splits["validation"] or splits["training"] & splits["test"]
                or splits["validation"] & splits["test"])

    # any sample regenerates alone from its derived seed
    image, points = generate_shape("draw_star", shapes.sample_seed(5, "draw_star", "validation", 1), SIZE)
    disk_image, disk_points = read_sample(root / "draw_star/images/validation/1.png",
                                          root / "draw_star/points/validation/1.npy")
    np.testing.assert_array_equal(disk_image, image)
    np.testing.assert_array_equal(disk_points, points)


def test_write_shapes_regenerates_on_new_params_or_missing_files(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    counts = {"training": 2}
    write_shapes(root, counts, seed=1, size=SIZE, primitives=("draw_lines",))
    (root / "draw_lines/images/training/1.png").unlink()
    assert write_shapes(root, counts, seed=1, size=SIZE, primitives=("draw_lines",))["generated"] is True
    assert (root / "draw_lines/images/training/1.png").is_file()
    assert write_shapes(root, counts, seed=2, size=SIZE, primitives=("draw_lines",))["generated"] is True
    with pytest.raises(ConfigError, match="train"):
        write_shapes(root, {"train": 2}, seed=1, size=SIZE)
    with pytest.raises(ConfigError, match="draw_circles"):
        write_shapes(root, counts, seed=1, size=SIZE, primitives=("draw_circles",))
