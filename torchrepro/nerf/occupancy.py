"""An occupancy grid for empty-space skipping (Müller et al., Instant-NGP, SIGGRAPH 2022, §4 and App. E.2; nerfacc).

A cubic grid of R³ cells over the scene's aabb. Each cell keeps a running density value; every ``every`` steps a
point is drawn uniformly in each of a set of cells and the field's σ there (queried with a dummy view direction —
σ does not depend on it) updates the cell as

    value ← max(decay · value, σ(random point in the cell))

which is the "decay 0.95" rule of Instant-NGP (App. E.2) and nerfacc's ``OccGridEstimator``: a cell that once
held matter fades out geometrically unless re-confirmed, while a single new high sample switches it on at once.
(A blending EMA ``decay·value + (1 − decay)·σ`` would need ~20 hits to notice a thin surface that a random point
rarely lands on; the max keeps it.) During the first ``warmup_steps`` all cells are updated; afterwards R³/4
uniformly drawn cells plus R³/4 drawn among the occupied ones (nerfacc ``_sample_uniform_and_occupied_cells``).
A cell is occupied when its value exceeds min(mean of all values, ``threshold``) (nerfacc ``_update``): the
absolute threshold is the rule, the mean guards against a field whose densities are all still small.

``threshold`` is on σ itself; nerfacc compares σ·δ (δ its render step size) with 0.01, so to reproduce its
setting pass ``threshold = 0.01 / δ``. Before the first update every cell counts as occupied, so an untrained
model renders exactly as without the grid.

:func:`query_occupied` / :meth:`OccupancyGrid.masked_field` evaluate a field only at samples in occupied cells and
return σ = 0, rgb = 0 elsewhere — the renderer's field protocol, so the renderer needs no change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from torchrepro.core.errors import ConfigError
from torchrepro.nerf.hashgrid import parse_aabb

__all__ = ["MaskedField", "OccupancyGrid", "query_occupied"]

Field = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _density_fn(field: nn.Module | Field) -> Callable[[Tensor], Tensor]:
    """σ of ``field``: its ``density(points)`` when it has one (skips the colour MLP), else the full call with a
    dummy view direction (+z) since σ is view-independent in NeRF (Mildenhall et al. §4)."""
    density = getattr(field, "density", None)
    if callable(density):
        return density

    def call(points: Tensor) -> Tensor:
        dirs = torch.zeros_like(points)
        dirs[:, 2] = 1.0
        return field(points, dirs)[0]
    return call


class OccupancyGrid(nn.Module):
    """R³ occupancy bitfield over ``aabb`` (module docstring). Buffers ``values`` [R, R, R] float (the decayed
    densities), ``binary`` [R, R, R] bool and ``updates`` (number of updates made) are in the state_dict, so a
    checkpoint restores the grid exactly. Cell (i, j, k) covers aabb_min + ([i, i+1], [j, j+1], [k, k+1]) · size / R.
    """

    def __init__(self, aabb: Sequence[float], resolution: int = 64, decay: float = 0.95, threshold: float = 0.01,
                 every: int = 16, chunk: int = 65536) -> None:
        super().__init__()
        box = parse_aabb(aabb)
        if resolution < 1 or not 0.0 <= decay <= 1.0 or threshold < 0.0 or every < 1 or chunk < 1:
            raise ConfigError(f"occupancy grid: need resolution ≥ 1, 0 ≤ decay ≤ 1, threshold ≥ 0, every ≥ 1 "
                              f"and chunk ≥ 1, got {resolution}, {decay}, {threshold}, {every}, {chunk}")
        self.resolution, self.decay, self.threshold, self.every, self.chunk = resolution, decay, threshold, every, chunk
        self.register_buffer("aabb_min", torch.tensor(box[:3]), persistent=False)
        self.register_buffer("aabb_size", torch.tensor(box[3:]) - torch.tensor(box[:3]), persistent=False)
        shape = (resolution,) * 3
        self.register_buffer("values", torch.zeros(shape))
        self.register_buffer("binary", torch.ones(shape, dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def n_cells(self) -> int:
        return self.resolution ** 3

    def cell_index(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Flat cell index [N] (i·R² + j·R + k) of world ``points`` [N, 3] and [N] bool inside the aabb."""
        unit = (points - self.aabb_min) / self.aabb_size
        inside = ((unit >= 0.0) & (unit <= 1.0)).all(-1)
        ijk = (unit * self.resolution).floor().long().clamp(0, self.resolution - 1)  # x = max lands in the last cell
        return (ijk[:, 0] * self.resolution + ijk[:, 1]) * self.resolution + ijk[:, 2], inside

    def cell_points(self, cells: Tensor, jitter: Tensor) -> Tensor:
        """World points in the flat ``cells`` [M] at offsets ``jitter`` [M, 3] ∈ [0, 1)³ inside each cell."""
        r = self.resolution
        ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], -1)
        return self.aabb_min + (ijk.to(jitter.dtype) + jitter) / r * self.aabb_size

    def occupied(self, points: Tensor) -> Tensor:
        """[N] bool: the point lies inside the aabb and in an occupied cell."""
        cells, inside = self.cell_index(points)
        return self.binary.view(-1)[cells] & inside

    def fraction_occupied(self) -> float:
        """Share of occupied cells (1.0 before the first update)."""
        return float(self.binary.float().mean())

    def _cells_to_update(self, warmup: bool, generator: torch.Generator | None) -> Tensor:
        """All cells during warm-up; then n = R³/4 uniform cells + n cells drawn among the occupied (nerfacc)."""
        device = self.values.device
        if warmup:
            return torch.arange(self.n_cells, device=device)
        gen_device = generator.device if generator is not None else device
        n = max(self.n_cells // 4, 1)
        uniform = torch.randint(self.n_cells, (n,), generator=generator, device=gen_device).to(device)
        occupied = self.binary.view(-1).nonzero()[:, 0]
        if occupied.numel() > n:
            pick = torch.randint(occupied.numel(), (n,), generator=generator, device=gen_device).to(device)
            occupied = occupied[pick]
        return torch.cat([uniform, occupied])

    @torch.no_grad()
    def update(self, field: nn.Module | Field, step: int, generator: torch.Generator | None = None,
               warmup_steps: int = 256) -> bool:
        """Re-evaluate cells when ``step`` is a multiple of ``every`` (module docstring); returns whether it did.

        ``generator`` draws the cells and the points in them (deterministic given its state). The field is
        queried in chunks of ``chunk`` points under no_grad; its training mode is left as it was.
        """
        if step % self.every != 0:
            return False
        cells = self._cells_to_update(step < warmup_steps, generator)
        gen_device = generator.device if generator is not None else self.values.device
        jitter = torch.rand(cells.numel(), 3, generator=generator, device=gen_device).to(self.values.device)
        points = self.cell_points(cells, jitter)
        density = _density_fn(field)
        sigma = torch.cat([density(chunk).float().reshape(-1) for chunk in points.split(self.chunk)])
        flat = self.values.view(-1)
        # decay each touched cell once (a repeated index writes the same value), then max with all its new samples
        updated = flat.clone()
        updated[cells] = flat[cells] * self.decay
        updated.scatter_reduce_(0, cells, sigma, "amax", include_self=True)
        flat.copy_(updated)
        threshold = min(float(flat.mean()), self.threshold)
        self.binary.copy_(self.values > threshold)
        self.updates += 1
        return True

    def masked_field(self, field: nn.Module | Field) -> MaskedField:
        """``field`` evaluated only in occupied cells (:class:`MaskedField`); same call protocol as ``field``."""
        return MaskedField(field, self)


def query_occupied(field: nn.Module | Field, grid: OccupancyGrid, points: Tensor,
                   view_dirs: Tensor) -> tuple[Tensor, Tensor]:
    """``field(points, view_dirs)`` at points in occupied cells, (σ = 0, rgb = 0) elsewhere: (σ [N], rgb [N, 3]).

    Only the occupied points reach the field, which is where the saving comes from; gradients flow to the field
    through them exactly as without the grid.
    """
    mask = grid.occupied(points)
    sigma_in, rgb_in = field(points[mask], view_dirs[mask])
    sigma = sigma_in.new_zeros(points.shape[0]).index_put((mask,), sigma_in)
    rgb = rgb_in.new_zeros(points.shape[0], 3).index_put((mask,), rgb_in)
    return sigma, rgb


class MaskedField(nn.Module):
    """A field that skips empty space: ``MaskedField(field, grid)(points, dirs)`` = :func:`query_occupied`.

    It holds ``field`` and ``grid`` as plain attributes, not sub-modules, so wrapping does not duplicate their
    parameters or buffers in a state_dict; register the field and the grid themselves on the model.
    """

    def __init__(self, field: nn.Module | Field, grid: OccupancyGrid) -> None:
        super().__init__()
        object.__setattr__(self, "field", field)  # bypass nn.Module registration (see the class docstring)
        object.__setattr__(self, "grid", grid)

    def density(self, points: Tensor) -> Tensor:
        mask = self.grid.occupied(points)
        sigma_in = _density_fn(self.field)(points[mask])
        return sigma_in.new_zeros(points.shape[0]).index_put((mask,), sigma_in)

    def forward(self, points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
        return query_occupied(self.field, self.grid, points, view_dirs)
