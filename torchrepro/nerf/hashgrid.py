"""A fast radiance field: multiresolution hash encoding + tiny MLPs (Müller et al., Instant-NGP, SIGGRAPH 2022).

Plain PyTorch (CPU and CUDA; no custom kernels, no tiny-cuda-nn), following the paper:

* **Encoding** (§3, Eq. 2–4): L levels with resolutions N_l = ⌊N_min · b^l⌋,
  b = exp((ln N_max − ln N_min)/(L − 1)); a point x ∈ [0, 1]³ is scaled to x·N_l and the 8 corners of its voxel
  are looked up in the level's table of F-dim features, then interpolated trilinearly. A level whose dense grid of
  (N_l + 1)³ vertices fits in T entries is indexed densely (x + y·(N_l+1) + z·(N_l+1)², no collisions); finer
  levels use the spatial hash h(x) = (x·1 ⊕ y·2654435761 ⊕ z·805459861) mod T (Eq. 4). As in tiny-cuda-nn a
  dense level only stores the (N_l + 1)³ entries it uses, so all levels live in one flat table with per-level
  offsets. Entries are initialised from U(−1e-4, 1e-4) (§4).
* **Field** (§5.4, "Neural radiance and density fields"): the density MLP (one hidden layer of 64, ReLU) maps the
  encoding to 1 + ``geo_features`` values, the first being log-density (σ = exp, here ``trunc_exp``: exp forward,
  a clamped exponent backward as torch-ngp / nerfacc, so a large logit cannot blow up a gradient); the colour MLP
  (two hidden layers of 64, ReLU, sigmoid output) takes the other ``geo_features`` values and the view direction
  projected onto the spherical harmonics basis of degree 4 (16 coefficients, as the paper; ``dir_encoding=
  "frequency"`` swaps in NeRF's positional encoding of the direction with 4 frequencies). The paper feeds all 16
  density outputs to the colour MLP; we feed the 15 that are not the density, as torch-ngp and nerfacc do.

Defaults are sized for the 100×100-pixel CPU recipe rather than the paper's 800×800 GPU setting (L 16, F 2,
T 2^19, N_max 2048 for NeRF): ``log2_table_size`` 17 and ``max_resolution`` 512, keeping L = 16, F = 2 and
N_min = 16. A 100-pixel view of a scene 3 units wide resolves ~100 voxels across it, so levels finer than ~512
mostly fit noise; T = 2^17 shrinks the table from 12.2 M to 3.2 M parameters (the 5 coarsest levels are dense
either way), and the Adam update of the whole table, which is dense, from ~70 ms to ~19 ms a step on one core
(~3 ms with ``torch.optim.Adam(fused=True)``). Forward + backward: ~7× the points per second of NeRF's 8×256 MLP
on this CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchrepro.core.errors import ConfigError

__all__ = ["HASH_PRIMES", "HashGridEncoding", "HashGridField", "level_resolutions", "parse_aabb",
           "spherical_harmonics", "trunc_exp"]

HASH_PRIMES = (1, 2654435761, 805459861)  # Eq. 4: π1 = 1 keeps the first axis cache-coherent in the original


def level_resolutions(n_levels: int, base_resolution: int, max_resolution: int) -> list[int]:
    """N_l = ⌊N_min · b^l⌋ with b = exp((ln N_max − ln N_min)/(L − 1)) (§3, Eq. 2–3), l = 0 … L − 1.

    Computed in float64 with a 1e-9 relative nudge before the floor, so that ``N_{L−1}`` is exactly N_max (and
    exact powers like 16·2³ give 128, not 127) despite the rounding of exp/log.
    """
    if n_levels == 1:
        return [base_resolution]
    growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (n_levels - 1))
    return [int(math.floor(base_resolution * growth ** level * (1.0 + 1e-9))) for level in range(n_levels)]


class _TruncExp(torch.autograd.Function):
    """exp(x) forward; gradient exp(min(x, 15)) (torch-ngp's ``trunc_exp``): bounded steps for large logits."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: Tensor) -> Tensor:
    """Density activation of Instant-NGP (exp of the log-density) with a clamped backward (see :class:`_TruncExp`)."""
    return _TruncExp.apply(x)


def spherical_harmonics(dirs: Tensor) -> Tensor:
    """Real spherical harmonics of degree 4 (l = 0 … 3, 16 values) of unit ``dirs`` [N, 3] → [N, 16].

    The view-direction encoding of Instant-NGP §5.4; same basis, order and signs as tiny-cuda-nn's
    ``SphericalHarmonics`` encoding (orthonormal over the sphere, checked in the tests by Monte-Carlo).
    """
    x, y, z = dirs.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.48860251190291987 * y,
        0.48860251190291987 * z,
        -0.48860251190291987 * x,
        1.0925484305920792 * x * y,
        -1.0925484305920792 * y * z,
        0.94617469575755997 * zz - 0.31539156525251999,
        -1.0925484305920792 * x * z,
        0.54627421529603959 * (xx - yy),
        0.59004358992664352 * y * (-3.0 * xx + yy),
        2.8906114426405538 * x * y * z,
        0.45704579946446572 * y * (1.0 - 5.0 * zz),
        0.3731763325901154 * z * (5.0 * zz - 3.0),
        0.45704579946446572 * x * (1.0 - 5.0 * zz),
        1.4453057213202769 * z * (xx - yy),
        0.59004358992664352 * x * (-xx + 3.0 * yy),
    ], dim=-1)


def frequency_encoding(dirs: Tensor, n_frequencies: int = 4) -> Tensor:
    """NeRF's positional encoding (Mildenhall et al. §5.1) of ``dirs`` [N, 3]: [d, sin(2^k π d), cos(2^k π d)]."""
    scales = (2.0 ** torch.arange(n_frequencies, device=dirs.device, dtype=dirs.dtype)) * math.pi
    angles = (dirs[..., None] * scales).flatten(-2)
    return torch.cat([dirs, torch.sin(angles), torch.cos(angles)], dim=-1)


def parse_aabb(aabb: Sequence[float], name: str = "aabb") -> tuple[float, ...]:
    """Validate an axis-aligned box given as (x_min, y_min, z_min, x_max, y_max, z_max)."""
    values = tuple(float(v) for v in aabb)
    if len(values) != 6 or any(not math.isfinite(v) for v in values) or any(
            values[i + 3] <= values[i] for i in range(3)):
        raise ConfigError(f"{name} must be 6 finite numbers (x_min, y_min, z_min, x_max, y_max, z_max) with each max "
                          f"above its min, got {list(aabb)}; e.g. [-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]")
    return values


class HashGridEncoding(nn.Module):
    """Multiresolution hash encoding (§3): points [N, 3] in [0, 1]³ → features [N, L·F], level-major.

    ``table`` is one flat [Σ_l T_l, F] parameter; level l occupies rows ``offsets[l]`` … ``offsets[l] + T_l − 1``
    with T_l = min(T, (N_l + 1)³). Points outside [0, 1]³ are clamped onto the cube.
    """

    def __init__(self, n_levels: int = 16, n_features: int = 2, log2_table_size: int = 17, base_resolution: int = 16,
                 max_resolution: int = 512) -> None:
        super().__init__()
        if n_levels < 1 or n_features < 1 or not 1 <= log2_table_size <= 30:
            raise ConfigError(f"hash grid: need n_levels ≥ 1, n_features ≥ 1 and 1 ≤ log2_table_size ≤ 30, got "
                              f"{n_levels}, {n_features}, {log2_table_size}")
        if not 1 <= base_resolution <= max_resolution:
            raise ConfigError(f"hash grid: need 1 ≤ base_resolution ≤ max_resolution, got {base_resolution} and "
                              f"{max_resolution}")
        self.n_levels, self.n_features = n_levels, n_features
        self.table_size = 2 ** log2_table_size
        resolutions = level_resolutions(n_levels, base_resolution, max_resolution)
        sizes = [min(self.table_size, (res + 1) ** 3) for res in resolutions]
        offsets = [sum(sizes[:level]) for level in range(n_levels)]
        self.register_buffer("resolutions", torch.tensor(resolutions, dtype=torch.long), persistent=False)
        self.register_buffer("hashed", torch.tensor([(res + 1) ** 3 > self.table_size for res in resolutions]),
                             persistent=False)
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.table = nn.Parameter(torch.empty(sum(sizes), n_features))
        self.reset_parameters()

    @property
    def out_dim(self) -> int:
        return self.n_levels * self.n_features

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """U(−1e-4, 1e-4) (§4): small enough that early features do not bias the MLP, non-zero to break symmetry."""
        with torch.no_grad():
            self.table.uniform_(-1e-4, 1e-4, generator=generator)

    def hash(self, corners: Tensor) -> Tensor:
        """Eq. 4 on integer vertices [..., 3] → [...] in [0, T). int64 products cannot overflow (coords < 2^31);
        as T divides 2^32 the result equals the uint32 arithmetic of the reference implementation."""
        x, y, z = corners.unbind(-1)
        return self._hash_axes(x, y, z)

    def _hash_axes(self, x: Tensor, y: Tensor, z: Tensor) -> Tensor:
        p1, p2, p3 = HASH_PRIMES
        return ((x * p1) ^ (y * p2) ^ (z * p3)) & (self.table_size - 1)  # mod T, T a power of two

    def indices_and_weights(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Rows of ``table`` [N, L, 8] of each level's 8 voxel corners and their trilinear weights [N, L, 8].

        Level l scales x to x·N_l; the voxel is ⌊x·N_l⌋ clamped to N_l − 1 so that x = 1 lies in the last voxel
        with fraction 1. Corner c = dx + 2·dy + 4·dz gets weight Π over axes of (frac if d = 1 else 1 − frac).
        """
        index, weights = self._level_major(points)
        return index.transpose(0, 1), weights.transpose(0, 1)

    def _level_major(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`indices_and_weights` as [L, N, 8]. Level-major order makes the gather and the gradient's
        scatter visit one level's table (1 MB at T = 2^17) at a time, which stays in cache: 2× faster on CPU than
        point-major order, where all levels' tables compete. Both are built per axis and combined by
        broadcasting (…, dz, dy, dx), ~3× cheaper than forming [L, N, 8, 3] corner coordinates."""
        res = self.resolutions
        scaled = points.clamp(0.0, 1.0)[None] * res[:, None, None].to(points.dtype)  # [L, N, 3]
        base = torch.minimum(scaled.floor().long(), (res - 1)[:, None, None])
        frac = scaled - base.to(points.dtype)
        step = torch.arange(2, device=points.device)
        x, y, z = (base[..., axis, None] + step for axis in range(3))  # [L, N, 2] each: the two vertices per axis
        n_dense = int((~self.hashed).sum())  # levels are sorted by resolution: the dense ones come first
        side = (res[:n_dense] + 1).view(-1, 1, 1, 1, 1)
        dense = (x[:n_dense, :, None, None, :] + y[:n_dense, :, None, :, None] * side
                 + z[:n_dense, :, :, None, None] * side * side)
        hashed = self._hash_axes(x[n_dense:, :, None, None, :], y[n_dense:, :, None, :, None],
                                 z[n_dense:, :, :, None, None])
        index = torch.cat([dense, hashed]).flatten(2) + self.offsets[:, None, None]
        wx, wy, wz = (torch.stack([1.0 - frac[..., axis], frac[..., axis]], -1) for axis in range(3))
        weights = (wz[..., :, None, None] * wy[..., None, :, None] * wx[..., None, None, :]).flatten(2)
        return index, weights

    def forward(self, points: Tensor) -> Tensor:
        """Eq. 2–4 + concatenation over levels: [N, 3] in [0, 1]³ → [N, L·F]."""
        index, weights = self._level_major(points)
        encoded = _Interpolate.apply(self.table, index, weights.to(self.table.dtype))  # [L, N, F]
        return encoded.transpose(0, 1).reshape(points.shape[0], self.out_dim)


def _gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """``table[index]`` for a 1-D ``index``: [K, F]. A row of F = 2 float32 (8 bytes) is gathered as one int64
    scalar, ~3× faster on CPU than ``index_select`` of rows, whose per-row copy dominates for such tiny rows."""
    row_dtype = {4: torch.int32, 8: torch.int64}.get(table.shape[1] * table.element_size())
    if row_dtype is None or not table.is_contiguous():
        return table.index_select(0, index)
    rows = table.view(row_dtype).view(-1).index_select(0, index)  # a bit-exact copy: no arithmetic on the bits
    return rows.view(table.dtype).view(-1, table.shape[1])


def _scatter_add_rows(index: Tensor, rows: Tensor, n_rows: int) -> Tensor:
    """Σ of ``rows`` [K, F] into a zero [n_rows, F] at the 1-D ``index``. Pairs (F = 2) are added as one complex
    number (real and imaginary parts add independently, so the sums are those of the real adds), else as scalars
    at row·F + f; both ~2× faster on CPU than ``index_add_`` of [K, F] rows."""
    n_features = rows.shape[1]
    if n_features == 2 and rows.dtype in (torch.float32, torch.float64):
        pairs = torch.view_as_complex(rows.contiguous())
        return torch.view_as_real(pairs.new_zeros(n_rows).index_add_(0, index, pairs))
    flat = (index[:, None] * n_features + torch.arange(n_features, device=index.device)).reshape(-1)
    return rows.new_zeros(n_rows * n_features).index_add_(0, flat, rows.reshape(-1)).view(n_rows, n_features)


class _Interpolate(torch.autograd.Function):
    """Σ_c w_c · table[index_c]: [M, F], [L, N, 8], [L, N, 8] → [L, N, F].

    Autograd of ``F.embedding`` / ``table[index]`` would compute the same, but on CPU their backward (sort-based
    ``embedding_dense_backward``, ``index_put_`` with accumulate) and the row-wise gather are 2–4× slower than a
    gather of 8-byte rows as scalars (:func:`_gather_rows`) and a 1-D ``index_add_`` of w_c · grad into a zero
    table (:func:`_scatter_add_rows`), and they dominated a training step.
    """

    @staticmethod
    def forward(ctx, table: Tensor, index: Tensor, weights: Tensor) -> Tensor:  # type: ignore[override]
        features = _gather_rows(table, index.reshape(-1)).view(*index.shape, table.shape[1])
        ctx.save_for_backward(table, index, weights)
        return torch.einsum("lnc,lncf->lnf", weights, features)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, Tensor | None]:  # type: ignore[override]
        table, index, weights = ctx.saved_tensors
        grad_table = grad_weights = None
        n_features = table.shape[1]
        if ctx.needs_input_grad[0]:
            per_corner = (weights[..., None] * grad[:, :, None, :]).reshape(-1, n_features)
            grad_table = _scatter_add_rows(index.reshape(-1), per_corner, table.shape[0])
        if ctx.needs_input_grad[2]:  # only when the points themselves need a gradient
            features = _gather_rows(table, index.reshape(-1)).view(*index.shape, n_features)
            grad_weights = torch.einsum("lnf,lncf->lnc", grad, features)
        return grad_table, None, grad_weights


class HashGridField(nn.Module):
    """Instant-NGP's NeRF field (§5.4): ``field(points [N, 3], view_dirs [N, 3])`` → (σ [N] ≥ 0, rgb [N, 3] ∈ [0, 1]).

    ``aabb`` (x_min, y_min, z_min, x_max, y_max, z_max) is mapped onto the encoding's [0, 1]³; points outside it
    get σ = 0 (their colour is still defined, but carries no weight in volume rendering). ``dir_encoding``:
    ``"sh"`` (degree-4 spherical harmonics, the paper) or ``"frequency"`` (NeRF's positional encoding with 4
    frequencies, 27 values). ``density_activation``: ``"trunc_exp"`` (default), ``"exp"`` or ``"softplus"``.
    """

    def __init__(self, aabb: Sequence[float], n_levels: int = 16, n_features: int = 2, log2_table_size: int = 17,
                 base_resolution: int = 16, max_resolution: int = 512, hidden: int = 64, geo_features: int = 15,
                 dir_encoding: str = "sh", density_activation: str = "trunc_exp") -> None:
        super().__init__()
        box = parse_aabb(aabb)
        if dir_encoding not in ("sh", "frequency"):
            raise ConfigError(f"dir_encoding must be 'sh' or 'frequency', got {dir_encoding!r}")
        if density_activation not in ("trunc_exp", "exp", "softplus"):
            raise ConfigError(f"density_activation must be 'trunc_exp', 'exp' or 'softplus', got "
                              f"{density_activation!r}")
        self.dir_encoding, self.density_activation = dir_encoding, density_activation
        # constructor arguments, not state: kept out of the state_dict so that checkpoints hold learnt values only
        self.register_buffer("aabb_min", torch.tensor(box[:3]), persistent=False)
        self.register_buffer("aabb_size", torch.tensor(box[3:]) - torch.tensor(box[:3]), persistent=False)
        self.encoding = HashGridEncoding(n_levels, n_features, log2_table_size, base_resolution, max_resolution)
        self.density_mlp = nn.Sequential(nn.Linear(self.encoding.out_dim, hidden), nn.ReLU(inplace=True),
                                         nn.Linear(hidden, 1 + geo_features))
        dir_dim = 16 if dir_encoding == "sh" else 27
        self.color_mlp = nn.Sequential(nn.Linear(geo_features + dir_dim, hidden), nn.ReLU(inplace=True),
                                       nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 3))

    def normalise(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points [N, 3] → ([N, 3] in the aabb's [0, 1]³ coordinates, [N] bool inside the aabb)."""
        unit = (points - self.aabb_min) / self.aabb_size
        inside = ((unit >= 0.0) & (unit <= 1.0)).all(-1)
        return unit, inside

    def _activate(self, logit: Tensor) -> Tensor:
        if self.density_activation == "softplus":
            return F.softplus(logit)
        if self.density_activation == "exp":
            return torch.exp(logit)
        return trunc_exp(logit)

    def _geometry(self, points: Tensor) -> tuple[Tensor, Tensor]:
        unit, inside = self.normalise(points)
        out = self.density_mlp(self.encoding(unit))
        # where() rather than multiplication by the mask: an exp that overflowed outside cannot turn into NaN
        sigma = torch.where(inside, self._activate(out[:, 0]), torch.zeros((), dtype=out.dtype, device=out.device))
        return sigma, out[:, 1:]

    def density(self, points: Tensor) -> Tensor:
        """σ [N] only (the occupancy grid's query; skips the colour MLP)."""
        return self._geometry(points)[0]

    def encode_direction(self, view_dirs: Tensor) -> Tensor:
        if self.dir_encoding == "sh":
            return spherical_harmonics(view_dirs)
        return frequency_encoding(view_dirs)

    def forward(self, points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
        """The renderer's field protocol: (σ [N] ≥ 0, rgb [N, 3] in [0, 1])."""
        sigma, geo = self._geometry(points)
        rgb = torch.sigmoid(self.color_mlp(torch.cat([geo, self.encode_direction(view_dirs).to(geo.dtype)], -1)))
        return sigma, rgb
