"""The shared road-scene renderer (torchrepro.render.road): the driving data set it draws must not change.

The renderer moved out of ``torchrepro/driving/synthetic.py`` so that the detection recipe can draw the same
scenes. The driving generator's files are pinned here by their sha256, recorded with the code *before* the
move (numpy 2.4 / Pillow 13 on x86-64): a change to the order of floating-point operations or of the draws
from the generators shows up as a different hash. If the hashes differ on another platform only, check the
pre-move code there first (SIMD maths or libjpeg may round differently); never update them to make a
refactor pass.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from torchrepro.driving import synthetic as driving
from torchrepro.render import road

#: generate_split(out, n_images=6, seed=3, size=48), file by file.
GOLDEN_SPLIT = {
    "generated.json": "178d10c62c8abaf1db98d1c11be12da2f91ed1a997a0a08ecd5b3f2dbcfd4186",
    "images/000000.jpg": "d03c5a0f00f39f145e0511b0692c127b9f4d0436d6cf25fd0076be1cc1b1860d",
    "images/000001.jpg": "fc4f2df7a48f9f9f3a814ee7e05de7ea76a7a9f9922b35fa8acdb8cef7937be4",
    "images/000002.jpg": "9ff378ba11f5d2f1d59aecf3213c79efd0fbe0b7fc3f168d118ef3ceb7052049",
    "images/000003.jpg": "3d7bb60649730796761e12c000939d4856ee4a1e7da929af259064f5851b0bad",
    "images/000004.jpg": "8824efc0c28b0a7d136a95e276b3bb3b041c288887189ddaf8c39ce4cb9ffa2e",
    "images/000005.jpg": "ce80a1a807bc32e5808eaf3e90ca832f05843a2aec8538863d46b15d24757f9f",
    "labels.csv": "4a837f53e464590a9ef3f4dc1bc3175cc0c7be8ff90f4ebf61f4c6352e95aa57",
}
#: render_scene of 9 scenes (default_rng(2024), labels cycling) at sizes 96 and 40: the raw uint8 pixels.
GOLDEN_RENDERS = "6a36510a68c9aa4cc49543f9e19f0d07cde6b46443f679a00e2af32842449134"


def test_driving_split_files_are_byte_identical_to_before_the_move(tmp_path: Path) -> None:
    out = tmp_path / "split"
    driving.generate_split(out, n_images=6, seed=3, size=48)
    got = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted(out.rglob("*")) if p.is_file()}
    assert got == GOLDEN_SPLIT


def test_driving_renders_are_byte_identical_to_before_the_move() -> None:
    rng = np.random.default_rng(2024)
    digest = hashlib.sha256()
    for i in range(9):
        params = driving.sample_scene_params(rng, driving.CLASSES[i % 3])
        for size in (96, 40):
            digest.update(driving.render_scene(params, size).tobytes())
    assert digest.hexdigest() == GOLDEN_RENDERS


def test_driving_uses_the_shared_renderer() -> None:
    """One implementation: the driving module re-exports the shared pieces instead of copying them."""
    assert driving.centreline_x is road.centreline_x and driving.road_centre_px is road.road_centre_px
    assert driving.CarParams is road.CarParams and issubclass(driving.RoadSceneParams, road.RoadScene)
    assert driving.FOCAL_FRACTION == road.FOCAL_FRACTION


def _value_noise_reference(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The plain 2-D-indexed version that road.value_noise replaced (same values, gathered differently)."""
    n = table.shape[0]
    fa, fb = np.floor(a), np.floor(b)
    ta, tb = a - fa, b - fb
    ta, tb = ta * ta * (3 - 2 * ta), tb * tb * (3 - 2 * tb)
    ia, ib = fa.astype(np.int64) % n, fb.astype(np.int64) % n
    ia1, ib1 = (ia + 1) % n, (ib + 1) % n
    top = table[ia, ib] + (table[ia1, ib] - table[ia, ib]) * ta
    bot = table[ia, ib1] + (table[ia1, ib1] - table[ia, ib1]) * ta
    return top + (bot - top) * tb


def test_value_noise_matches_the_plain_reference_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    table = rng.uniform(-1, 1, size=(64, 64)).astype(np.float32)
    a = (rng.uniform(-300, 300, size=(37, 41))).astype(np.float32)
    b = (rng.uniform(-300, 300, size=(37, 41))).astype(np.float32)
    got, want = road.value_noise(table, a, b), _value_noise_reference(table, a, b)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    # broadcasting rows against columns, as the sky layer calls it
    px = np.arange(50, dtype=np.float32) + 0.5
    assert np.array_equal(road.value_noise(table, px[None, :] * 0.1, px[:, None] * 0.3 + 7.0),
                          _value_noise_reference(table, px[None, :] * 0.1, px[:, None] * 0.3 + 7.0))


def test_car_parts_are_the_painted_boxes() -> None:
    """draw_car paints exactly car_parts; the parts other than the contact shadow span the car's width and height."""
    params = driving.sample_scene_params(np.random.default_rng(5), "straight")
    cam = road.make_camera(params, 96)
    car = road.CarParams(depth=2.0, lane_offset=0.0, width=0.3, height=0.25, rgb=(0.9, 0.1, 0.1))
    img = np.zeros((96, 96, 3), np.float32)
    road.draw_car(img, car, params, cam)
    manual = np.zeros_like(img)
    parts = road.car_parts(car, params, cam)
    for x0, x1, y0, y1, rgb, alpha, _ in parts:
        road.paint_box(manual, x0, x1, y0, y1, rgb, alpha)
    assert np.array_equal(img, manual)
    body = [p for p in parts if p[6] != "shadow"]
    w, h = cam.focal * car.width / car.depth, cam.focal * car.height / car.depth
    assert np.isclose(max(p[1] for p in body) - min(p[0] for p in body), 1.14 * w)
    assert np.isclose(max(p[3] for p in body) - min(p[2] for p in body), h)
    assert np.isclose(max(p[3] for p in body), cam.ground_row(car.depth))
