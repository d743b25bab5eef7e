"""NeRF's renderer: samples along rays, the volume-rendering quadrature and hierarchical sampling (Mildenhall et al.,
ECCV 2020, §4 Eq. 1–3 and §5.2 Eq. 5), as the official code (bmild/nerf ``run_nerf.py``) and the seed's tiny-NeRF
tutorial do it.

* **Stratified samples** (§4, Eq. 2): ``linspace(near, far, S)``; with ``perturb`` each sample is drawn uniformly in
  its stratum [mid_{i−1}, mid_i] between the midpoints of neighbouring ones (the first from ``near``, the last to
  ``far``), one uniform number per ray and sample as the official code (the tutorial shares them across rays).
* **Quadrature** (Eq. 3): δ_i = t_{i+1} − t_i with the last δ = 1e10 (the ray goes on to infinity), every δ times ‖d‖
  because the cameras' directions are not unit (t is a multiple of d, not a distance); α_i = 1 − exp(−σ_i δ_i);
  T_i = Π_{j<i} (1 − α_j + 1e-10), the *exclusive* cumulative product (= exp(−Σ_{j<i} σ_j δ_j) up to the 1e-10 the
  code adds so the product never reaches an exact 0); w_i = T_i α_i; C = Σ w_i c_i, depth = Σ w_i t_i, acc = Σ w_i,
  and on a white background C + (1 − acc).
* **Hierarchical sampling** (§5.2, Eq. 5): the coarse weights, read as a piecewise-constant PDF over the bins between
  the midpoints of the coarse samples (weights[1:−1]: the first and last samples have no bin on both sides), are
  inverted to draw ``n_fine`` new t; the fine network is evaluated at the sorted union of coarse and fine t
  (N_c + N_f samples, as the paper). The new t are detached: no gradient flows into the coarse weights through the
  sample positions (the official code stops it too).
* The fields are evaluated ``chunk`` points at a time to bound memory (the tutorial's 2^14–2^15).

PSNR is −10 log₁₀(MSE) for colours in [0, 1]; the task reports the fine network's (not the coarse + fine loss sum).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["evaluate_field", "psnr", "ray_box_bounds", "render_rays", "sample_pdf", "stratified_samples",
           "volume_render"]

FAR_DELTA = 1e10  # the official code's "infinite" last interval
MAX_DENSITY = 1e10  # σ is clamped to this: σ = inf times δ = 0 (two equal t) would otherwise be NaN


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | None,
             dtype: torch.dtype = torch.float32) -> Tensor:
    """U[0, 1) of ``shape`` drawn on the generator's device (it must match) and moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


def _per_ray(value: float | Tensor, n_rays: int, device: torch.device | None) -> Tensor:
    """A near / far bound as [R, 1] float: a number, or a tensor of R values ([R] or [R, 1])."""
    bound = torch.as_tensor(value, dtype=torch.float32, device=device)
    return bound.reshape(-1, 1).expand(n_rays, 1) if bound.numel() == 1 else bound.reshape(n_rays, 1)


def stratified_samples(near: float | Tensor, far: float | Tensor, n_samples: int, n_rays: int, perturb: bool,
                       generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
    """t [R, S] along each ray (§4, Eq. 2): ``linspace(near, far, S)``, jittered within the strata if ``perturb``."""
    if isinstance(near, Tensor) and device is None:
        device = near.device
    near_t, far_t = _per_ray(near, n_rays, device), _per_ray(far, n_rays, device)
    steps = torch.linspace(0.0, 1.0, n_samples, device=near_t.device)
    t = near_t * (1.0 - steps) + far_t * steps  # [R, S]
    if not perturb:
        return t
    mids = 0.5 * (t[:, 1:] + t[:, :-1])
    upper = torch.cat((mids, t[:, -1:]), dim=-1)
    lower = torch.cat((t[:, :1], mids), dim=-1)
    return lower + (upper - lower) * _uniform(tuple(t.shape), generator, t.device)


def sample_pdf(bins: Tensor, weights: Tensor, n_samples: int, perturb: bool,
               generator: torch.Generator | None = None) -> Tensor:
    """Inverse-transform samples [R, n_samples] of the piecewise-constant PDF ``weights`` [R, B] on ``bins`` [R, B+1].

    §5.2 Eq. 5 / the official ``sample_pdf``: 1e-5 is added to every weight (a ray with all-zero weights samples
    uniformly instead of dividing by zero); ``perturb`` draws u ~ U[0, 1), otherwise u = linspace(0, 1, n) so the
    samples are the CDF's quantiles, monotone in u. The result is detached from ``weights`` and ``bins``.
    """
    bins, weights = bins.detach(), weights.detach()
    weights = weights + 1e-5
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat((torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)), dim=-1)  # [R, B+1]
    shape = (cdf.shape[0], n_samples)
    if perturb:
        u = _uniform(shape, generator, cdf.device, cdf.dtype)
    else:
        u = torch.linspace(0.0, 1.0, n_samples, device=cdf.device, dtype=cdf.dtype).expand(shape)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.contiguous(), u, right=True)
    below = (idx - 1).clamp(min=0)
    above = idx.clamp(max=cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_lo, bin_hi = bins.gather(-1, below), bins.gather(-1, above)
    denom = cdf_hi - cdf_lo
    # an (almost) empty bin: put the sample at its start rather than divide by ~0 (the official guard)
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    return bin_lo + (u - cdf_lo) / denom * (bin_hi - bin_lo)


def volume_render(density: Tensor, rgb: Tensor, t: Tensor, directions: Tensor, white_background: bool,
                  raw_noise_std: float = 0.0, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """The quadrature of Eq. 3 (module docstring) for σ [R, S], rgb [R, S, 3] at t [R, S] along ``directions`` [R, 3].

    Returns ``rgb`` [R, 3], ``depth`` [R] (Σ w t), ``acc`` [R] (Σ w) and ``weights`` [R, S]. ``raw_noise_std``: the
    official code adds N(0, std²) to the *raw* density before its ReLU to regularise it (its LLFF configs use 1.0,
    Blender 0); our fields return σ already activated, so here the noise is added to σ and the sum clamped at
    0 — equal to the official wherever raw ≥ 0, slightly more noise in empty space (where raw < 0 the official
    ReLU(raw + n) is often still 0, ours is max(n, 0)). Off (0) by default. σ is clamped to [0, 1e10] so an
    infinite density is an opaque sample, not a NaN; a NaN σ (a diverged field) stays NaN and shows in the loss.
    """
    if raw_noise_std > 0.0:
        gen_device = generator.device if generator is not None else density.device
        noise = torch.randn(density.shape, generator=generator, device=gen_device, dtype=density.dtype)
        density = density + raw_noise_std * noise.to(density.device)
    density = density.clamp(0.0, MAX_DENSITY)
    deltas = torch.cat((t[:, 1:] - t[:, :-1], torch.full_like(t[:, :1], FAR_DELTA)), dim=-1)
    deltas = deltas.clamp_min(0.0) * directions.norm(dim=-1, keepdim=True)  # t counts multiples of d, not distance
    alpha = 1.0 - torch.exp(-density * deltas)
    transmittance = torch.cumprod(1.0 - alpha + 1e-10, dim=-1)
    transmittance = torch.cat((torch.ones_like(transmittance[:, :1]), transmittance[:, :-1]), dim=-1)  # exclusive
    weights = alpha * transmittance
    acc = weights.sum(dim=-1)
    colour = (weights[..., None] * rgb).sum(dim=-2)
    if white_background:
        colour = colour + (1.0 - acc[:, None])
    return {"rgb": colour, "depth": (weights * t).sum(dim=-1), "acc": acc, "weights": weights}


def evaluate_field(field: nn.Module, points: Tensor, dirs: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """``field(points, dirs)`` on [N, 3] inputs, ``chunk`` points at a time (bounds the activations' memory)."""
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    if points.shape[0] <= chunk:
        return field(points, dirs)
    parts = [field(points[i:i + chunk], dirs[i:i + chunk]) for i in range(0, points.shape[0], chunk)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _render_pass(field: nn.Module, origins: Tensor, directions: Tensor, t: Tensor, white_background: bool,
                 chunk: int) -> dict[str, Tensor]:
    """Evaluate ``field`` at o + t d for t [R, S] and composite; the dict of :func:`volume_render` plus ``t``."""
    n_rays, n_samples = t.shape
    points = origins[:, None, :] + directions[:, None, :] * t[..., None]  # [R, S, 3]
    view_dirs = F.normalize(directions, dim=-1)[:, None, :].expand(n_rays, n_samples, 3)
    sigma, rgb = evaluate_field(field, points.reshape(-1, 3), view_dirs.reshape(-1, 3), chunk)
    out = volume_render(sigma.reshape(n_rays, n_samples), rgb.reshape(n_rays, n_samples, 3), t, directions,
                        white_background)
    out["t"] = t
    return out


def render_rays(coarse: nn.Module, fine: nn.Module | None, origins: Tensor, directions: Tensor, near: float | Tensor,
                far: float | Tensor, n_coarse: int, n_fine: int, perturb: bool, white_background: bool, chunk: int = 32768,
                generator: torch.Generator | None = None) -> dict[str, dict[str, Tensor]]:
    """Render rays [R, 3] (directions not normalised) with the coarse field and, if given, the fine one (§5.2).

    Returns ``{"coarse": …, "fine": …}``, each the dict of :func:`volume_render` plus ``t`` [R, S] (the sample
    positions); ``"fine"`` is absent when ``fine`` is None or ``n_fine`` is 0. The fine pass sees the sorted union of
    the coarse t and ``n_fine`` t drawn from the coarse weights (module docstring), N_c + N_f samples.
    """
    t_coarse = stratified_samples(near, far, n_coarse, origins.shape[0], perturb, generator, origins.device)
    out = {"coarse": _render_pass(coarse, origins, directions, t_coarse, white_background, chunk)}
    if fine is None or n_fine <= 0:
        return out
    mids = 0.5 * (t_coarse[:, 1:] + t_coarse[:, :-1])
    t_new = sample_pdf(mids, out["coarse"]["weights"][:, 1:-1], n_fine, perturb, generator)
    t_fine, _ = torch.sort(torch.cat((t_coarse, t_new), dim=-1), dim=-1)
    out["fine"] = _render_pass(fine, origins, directions, t_fine, white_background, chunk)
    return out


def ray_box_bounds(origins: Tensor, directions: Tensor, aabb: tuple[float, ...], near: float,
                   far: float) -> tuple[Tensor, Tensor]:
    """Per-ray [near, far] clipped to the axis-aligned box ``aabb`` (xmin, ymin, zmin, xmax, ymax, zmax) by the
    slab method: [R] tensors. A field that is empty outside its box (the hash grid) then spends every sample inside
    it, as nerfacc's ray marching does; rays that miss the box keep [near, far] (all their samples are empty)."""
    box = torch.as_tensor(aabb, dtype=origins.dtype, device=origins.device)
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t0, t1 = (box[:3] - origins) / safe, (box[3:] - origins) / safe
    enter = torch.minimum(t0, t1).amax(dim=-1).clamp_min(near)
    leave = torch.maximum(t0, t1).amin(dim=-1).clamp_max(far)
    hit = enter < leave
    return torch.where(hit, enter, torch.full_like(enter, near)), torch.where(hit, leave, torch.full_like(leave, far))


def psnr(mse: Tensor) -> Tensor:
    """PSNR in dB of colours in [0, 1] from their mean squared error: −10 log₁₀(MSE) (the seed's metric)."""
    return -10.0 * torch.log10(mse)
