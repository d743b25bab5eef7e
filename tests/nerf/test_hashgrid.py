"""The hash-grid field (Instant-NGP §3, §5.4) and the occupancy grid (§4) against plain-Python references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchrepro.core.errors import ConfigError
from torchrepro.nerf.hashgrid import (HashGridEncoding, HashGridField, _Interpolate, level_resolutions,
                                      spherical_harmonics)
from torchrepro.nerf.occupancy import OccupancyGrid, query_occupied

AABB = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
# a small config with both kinds of level: N = 4, 8 (dense: 125, 729 ≤ 1024 vertices), 16, 32 (hashed)
SMALL = {"n_levels": 4, "n_features": 2, "log2_table_size": 10, "base_resolution": 4, "max_resolution": 32}


def reference_corners(point: list[float], res: int, table_size: int) -> list[tuple[int, float]]:
    """Plain-Python Eq. 2–4 for one level: [(row within the level, trilinear weight)] of the 8 corners."""
    scaled = [p * res for p in point]
    base = [min(int(math.floor(s)), res - 1) for s in scaled]
    frac = [s - b for s, b in zip(scaled, base)]
    out = []
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                x, y, z = base[0] + dx, base[1] + dy, base[2] + dz
                if (res + 1) ** 3 <= table_size:
                    row = x + y * (res + 1) + z * (res + 1) ** 2
                else:
                    row = ((x * 1) ^ (y * 2654435761) ^ (z * 805459861)) % table_size
                weight = 1.0
                for f, d in zip(frac, (dx, dy, dz)):
                    weight *= f if d else 1.0 - f
                out.append((row, weight))
    return out


def reference_encoding(enc: HashGridEncoding, point: list[float]) -> tuple[list[float], set[int]]:
    """Plain-Python encoding of one point and the set of global table rows it touches."""
    table = enc.table.detach().double().tolist()
    features, rows = [], set()
    for level, res in enumerate(enc.resolutions.tolist()):
        offset = int(enc.offsets[level])
        acc = [0.0] * enc.n_features
        for row, weight in reference_corners(point, res, enc.table_size):
            rows.add(offset + row)
            acc = [a + weight * v for a, v in zip(acc, table[offset + row])]
        features += acc
    return features, rows


def test_level_resolutions_follow_the_geometric_progression() -> None:
    # b = exp((ln 512 − ln 16)/3) = 32^(1/3) = 3.1748…: 16, ⌊50.80⌋, ⌊161.27⌋, 512
    assert level_resolutions(4, 16, 512) == [16, 50, 161, 512]
    assert level_resolutions(4, 2, 16) == [2, 4, 8, 16]  # b = 2 exactly: no floor() rounding down to 15
    assert level_resolutions(3, 16, 100) == [16, 40, 100]  # b = 2.5
    enc = HashGridEncoding(**SMALL)
    assert enc.resolutions.tolist() == [4, 8, 16, 32]
    assert enc.hashed.tolist() == [False, False, True, True]
    # dense levels store only their (N+1)³ vertices, hashed ones T rows
    assert enc.offsets.tolist() == [0, 125, 125 + 729, 125 + 729 + 1024]
    assert enc.table.shape == (125 + 729 + 2 * 1024, 2)
    assert enc.table.abs().max() <= 1e-4 and enc.table.abs().max() > 0  # U(−1e-4, 1e-4)


def test_corner_indices_and_weights_match_plain_python() -> None:
    torch.manual_seed(0)
    enc = HashGridEncoding(**SMALL)
    points = torch.cat([torch.rand(6, 3), torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.5, 1.0]])])
    index, weights = enc.indices_and_weights(points)
    for n, point in enumerate(points.tolist()):
        for level, res in enumerate(enc.resolutions.tolist()):
            ref = reference_corners(point, res, enc.table_size)
            assert index[n, level].tolist() == [int(enc.offsets[level]) + row for row, _ in ref]
            assert weights[n, level].tolist() == pytest.approx([w for _, w in ref], abs=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(8, 4))
    # the hashed level really hashes: a vertex beyond the dense range is mapped by Eq. 4
    assert enc.hash(torch.tensor([3, 5, 7])) == (3 ^ 5 * 2654435761 ^ 7 * 805459861) % 1024


def test_encoding_matches_plain_python_trilinear_interpolation() -> None:
    torch.manual_seed(1)
    enc = HashGridEncoding(**SMALL)
    with torch.no_grad():
        enc.table.normal_()  # O(1) entries so that a wrong corner or weight shows
    points = torch.rand(5, 3)
    out = enc(points)
    assert out.shape == (5, 8)
    for n, point in enumerate(points.tolist()):
        assert out[n].tolist() == pytest.approx(reference_encoding(enc, point)[0], abs=1e-5)


def test_value_at_a_grid_vertex_is_that_entry() -> None:
    torch.manual_seed(2)
    enc = HashGridEncoding(**SMALL)
    with torch.no_grad():
        enc.table.normal_()
    # vertex (3, 5, 2) of the level with N = 8 (dense) and vertex (6, 10, 4) of the N = 16 level (hashed)
    point = torch.tensor([[3 / 8, 5 / 8, 2 / 8]])
    out = enc(point).view(4, 2)
    torch.testing.assert_close(out[1], enc.table[125 + 3 + 5 * 9 + 2 * 81])
    torch.testing.assert_close(out[2], enc.table[125 + 729 + enc.hash(torch.tensor([6, 10, 4]))])


def test_gradients_reach_only_the_touched_entries() -> None:
    torch.manual_seed(3)
    enc = HashGridEncoding(**SMALL)
    points = torch.tensor([[0.13, 0.52, 0.71], [0.91, 0.07, 0.33]])
    enc(points).pow(2).sum().mul(1e6).backward()  # ×1e6: entries are ~1e-4, keep the gradients far from 0
    enc.zero_grad()
    enc(points).sum().backward()
    touched = set()
    for point in points.tolist():
        touched |= reference_encoding(enc, point)[1]
    grad_rows = set(enc.table.grad.abs().sum(-1).nonzero()[:, 0].tolist())
    assert grad_rows == touched
    assert len(touched) > 8 * 4  # two points, four levels, distinct voxels


@pytest.mark.parametrize("n_features", [1, 2, 3])
def test_interpolation_gradients_pass_gradcheck(n_features: int) -> None:
    # the hand-written backward (pairs added as complex numbers for F = 2, scalars otherwise), w.r.t. the table
    # and w.r.t. the weights (used only when the points need a gradient)
    generator = torch.Generator().manual_seed(11)
    table = torch.randn(50, n_features, dtype=torch.float64, generator=generator, requires_grad=True)
    index = torch.randint(50, (3, 4, 8), generator=generator)  # repeats: the gradient must accumulate
    weights = torch.rand(3, 4, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(_Interpolate.apply, (table, index, weights))


def test_spherical_harmonics_are_orthonormal() -> None:
    generator = torch.Generator().manual_seed(4)
    dirs = F.normalize(torch.randn(200_000, 3, generator=generator, dtype=torch.float64), dim=-1)
    sh = spherical_harmonics(dirs)
    gram = sh.T @ sh / dirs.shape[0] * 4 * math.pi  # Monte-Carlo ∫ Y_i Y_j dΩ
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=0.05, rtol=0)


def test_field_protocol_and_density_zero_outside_the_aabb() -> None:
    torch.manual_seed(5)
    for dir_encoding in ("sh", "frequency"):
        field = HashGridField(AABB, **SMALL, dir_encoding=dir_encoding)
        points = torch.tensor([[0.0, 0.0, 0.0], [1.49, -1.2, 0.3], [1.6, 0.0, 0.0], [0.0, -3.0, 0.0],
                               [0.0, 0.0, 1e6]])
        dirs = F.normalize(torch.randn(5, 3), dim=-1)
        sigma, rgb = field(points, dirs)
        assert sigma.shape == (5,) and rgb.shape == (5, 3)
        assert (sigma[:2] > 0).all() and (sigma[2:] == 0).all()
        assert ((rgb >= 0) & (rgb <= 1)).all()
        (sigma.sum() + rgb.sum()).backward()
        assert all(torch.isfinite(p.grad).all() for p in field.parameters() if p.grad is not None)
        empty = field(torch.zeros(0, 3), torch.zeros(0, 3))
        assert empty[0].shape == (0,) and empty[1].shape == (0, 3)
    with pytest.raises(ConfigError, match="aabb"):
        HashGridField((1.0, 0.0, 0.0, 0.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="dir_encoding"):
        HashGridField(AABB, dir_encoding="fourier")


def sphere_target(points: Tensor) -> tuple[Tensor, Tensor]:
    """A coloured ball: σ = 20 within radius 0.8 of the origin, 0 elsewhere; colour varies with position."""
    inside = points.norm(dim=-1) < 0.8
    return inside.float() * 20.0, (points / 3.0 + 0.5).clamp(0.0, 1.0)


def test_field_fits_a_coloured_sphere_quickly() -> None:
    torch.manual_seed(6)
    generator = torch.Generator().manual_seed(6)
    field = HashGridField(AABB, n_levels=8, log2_table_size=14, base_resolution=4, max_resolution=64)
    optimiser = torch.optim.Adam(field.parameters(), lr=1e-2, eps=1e-15)  # Instant-NGP §4: Adam, ε = 1e-15

    def loss_on(points: Tensor) -> Tensor:
        dirs = F.normalize(torch.randn(points.shape[0], 3, generator=generator), dim=-1)
        sigma, rgb = field(points, dirs)
        target_sigma, target_rgb = sphere_target(points)
        return F.mse_loss(torch.log1p(sigma), torch.log1p(target_sigma)) + F.mse_loss(rgb, target_rgb)

    probe = torch.rand(4096, 3, generator=generator) * 3.0 - 1.5
    with torch.no_grad():
        before = float(loss_on(probe))
    for _ in range(100):  # ~2 s on one core
        optimiser.zero_grad()
        loss_on(torch.rand(1024, 3, generator=generator) * 3.0 - 1.5).backward()
        optimiser.step()
    with torch.no_grad():
        after = float(loss_on(probe))
        sigma, _ = field(torch.tensor([[0.0, 0.0, 0.0], [1.3, 1.3, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]] * 2))
    # 0.94 → 0.11 (what is left is the one-voxel shell at the ball's sharp edge, 3/64 wide at the finest level)
    assert after < before / 6, (before, after)
    assert sigma[0] > 10 and sigma[1] < 1


class BallField(nn.Module):
    """σ = 50 inside a ball of radius 0.5 at (0.3, 0, 0), 0 elsewhere; rgb = (1, 0, 0). Counts its queries."""

    def __init__(self) -> None:
        super().__init__()
        self.queried = 0

    def forward(self, points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
        self.queried += points.shape[0]
        inside = (points - torch.tensor([0.3, 0.0, 0.0])).norm(dim=-1) < 0.5
        rgb = torch.tensor([1.0, 0.0, 0.0]).expand(points.shape[0], 3)
        return inside.float() * 50.0, rgb


def cell_distances(grid: OccupancyGrid) -> tuple[Tensor, Tensor]:
    """Nearest and farthest distance [R³] of each cell's cube to the ball's centre (flat cell order)."""
    r = grid.resolution
    lo = grid.cell_points(torch.arange(r ** 3), torch.zeros(r ** 3, 3)) - torch.tensor([0.3, 0.0, 0.0])
    hi = lo + grid.aabb_size / r
    nearest = torch.maximum(torch.maximum(lo, -hi), torch.zeros(())).norm(dim=-1)
    farthest = torch.maximum(lo.abs(), hi.abs()).norm(dim=-1)
    return nearest, farthest


def test_occupancy_grid_marks_the_ball_and_skips_the_rest() -> None:
    grid = OccupancyGrid(AABB, resolution=16, every=4)
    assert grid.fraction_occupied() == 1.0  # nothing skipped before the first update
    field, generator = BallField(), torch.Generator().manual_seed(7)
    assert not grid.update(field, step=3, generator=generator)  # not a multiple of `every`
    for step in range(0, 16, 4):  # warm-up: every cell every time
        assert grid.update(field, step=step, generator=generator, warmup_steps=8)
    nearest, farthest = cell_distances(grid)
    occupied = grid.binary.view(-1)
    assert not occupied[nearest > 0.5].any()  # cells wholly outside the ball
    assert occupied[farthest < 0.5].all()  # cells wholly inside
    assert 0.005 < grid.fraction_occupied() < 0.1
    assert int(grid.updates) == 4
    # after warm-up only R³/4 uniform cells + the occupied ones (fewer than R³/4 here) are queried
    field.queried, n_occupied = 0, int(occupied.sum())
    grid.update(field, step=16, generator=generator, warmup_steps=8)
    assert field.queried == 16 ** 3 // 4 + n_occupied
    points = torch.tensor([[0.3, 0.0, 0.0], [-1.2, 1.2, 1.2], [0.0, 0.0, 2.0]])
    assert grid.occupied(points).tolist() == [True, False, False]


def test_occupancy_values_decay_then_max() -> None:
    grid = OccupancyGrid(AABB, resolution=4, every=1, decay=0.5, threshold=1.0)
    high = lambda p, d: (torch.full((p.shape[0],), 8.0), torch.zeros(p.shape[0], 3))  # noqa: E731
    low = lambda p, d: (torch.full((p.shape[0],), 3.0), torch.zeros(p.shape[0], 3))  # noqa: E731
    grid.update(high, step=0)
    assert (grid.values == 8.0).all()
    grid.update(low, step=1)
    assert (grid.values == 4.0).all()  # max(0.5·8, 3)
    grid.update(low, step=2)
    assert (grid.values == 3.0).all()  # max(0.5·4, 3)
    assert grid.binary.all()


def test_query_occupied_is_the_field_where_occupied_and_zero_elsewhere() -> None:
    torch.manual_seed(8)
    grid = OccupancyGrid(AABB, resolution=16)
    grid.update(BallField(), step=0, generator=torch.Generator().manual_seed(8))
    field = HashGridField(AABB, **SMALL)
    points = torch.rand(3000, 3) * 3.2 - 1.6
    dirs = F.normalize(torch.randn(3000, 3), dim=-1)
    mask = grid.occupied(points)
    assert 0 < int(mask.sum()) < 3000
    sigma, rgb = query_occupied(field, grid, points, dirs)
    ref_sigma, ref_rgb = field(points[mask], dirs[mask])
    assert torch.equal(sigma[mask], ref_sigma) and torch.equal(rgb[mask], ref_rgb)
    assert (sigma[~mask] == 0).all() and (rgb[~mask] == 0).all()
    full_sigma, full_rgb = field(points, dirs)
    torch.testing.assert_close(sigma[mask], full_sigma[mask])
    masked = grid.masked_field(field)
    assert torch.equal(masked(points, dirs)[0], sigma) and torch.equal(masked.density(points), sigma)
    assert list(masked.state_dict()) == []  # the wrapper does not duplicate parameters
    masked(points, dirs)[1].sum().backward()
    assert field.encoding.table.grad is not None and field.encoding.table.grad.abs().sum() > 0


def test_occupancy_grid_round_trips_through_state_dict() -> None:
    grid = OccupancyGrid(AABB, resolution=16)
    generator = torch.Generator().manual_seed(9)
    for step in (0, 16, 32):
        grid.update(BallField(), step=step, generator=generator, warmup_steps=16)
    state = grid.state_dict()
    assert set(state) == {"values", "binary", "updates"}
    restored = OccupancyGrid(AABB, resolution=16)
    restored.load_state_dict(state)
    assert torch.equal(restored.values, grid.values) and torch.equal(restored.binary, grid.binary)
    assert int(restored.updates) == 3
    # and the same generator state gives the same next update
    g1, g2 = torch.Generator().manual_seed(10), torch.Generator().manual_seed(10)
    grid.update(BallField(), 48, g1, warmup_steps=16)
    restored.update(BallField(), 48, g2, warmup_steps=16)
    assert torch.equal(restored.values, grid.values)
