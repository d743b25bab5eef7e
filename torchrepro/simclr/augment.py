"""SimCLR's data augmentation, batched on tensors, each draw a pure function of ``(seed, epoch, index)``.

The composition of Chen et al. (ICML 2020, §3 "Data augmentation for contrastive representation learning" and
Appendix A): random crop with resize back to the image size and a random horizontal flip, colour distortion
(colour jitter of strength s with probability 0.8 — brightness, contrast and saturation factors in
[1 − 0.8s, 1 + 0.8s], hue shift in [−0.2s, 0.2s], applied in a random order — then grayscale with probability
0.2), and Gaussian blur with probability 0.5 (σ ∈ [0.1, 2.0], kernel 10 % of the image side). Each sample gets two
independent draws, its two views.

The seed's implementation ran torchvision's per-sample PIL transforms in a Dataset. Here every operation works on
a whole batch at once (one ``grid_sample`` for all crops and flips, masked colour operations, one grouped
convolution for all blurs), and every random number is computed, not drawn: :func:`keyed_uniforms` hashes a
sample's seed (:func:`torchrepro.core.seeding.derive_seed` of the run's seed, the epoch and the sample index) with
SplitMix64 into a fixed number of uniforms per view. The views of a sample are therefore the same whatever the
batch it lands in, the worker that loads it, the number of DDP ranks, or the step a run was resumed at.

:meth:`SimCLRAugment.params` exposes the per-sample parameters, so the tests can replay them through torchvision's
own functional transforms one sample at a time (the reference) and compare.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

from torchrepro.simclr.config import AugmentConfig

#: uniforms drawn per view: 10 crop attempts × (area, log aspect), crop position (2), flip, jitter (apply, 4
#: factors, 4 order keys), grayscale, blur (apply, σ)
CROP_ATTEMPTS = 10
DRAWS_PER_VIEW = 2 * CROP_ATTEMPTS + 2 + 1 + 9 + 1 + 2
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Steele et al., OOPSLA 2014) on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def keyed_uniforms(seeds: torch.Tensor | np.ndarray, n: int) -> np.ndarray:
    """``[B, n]`` float64 uniforms in [0, 1): row ``b`` is the SplitMix64 stream of ``seeds[b]`` (a pure function
    of the seed, independent of the other rows)."""
    s = np.asarray(seeds.cpu().numpy() if isinstance(seeds, torch.Tensor) else seeds).astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        counters = s[:, None] + _GOLDEN * np.arange(1, n + 1, dtype=np.uint64)[None, :]
    return (_splitmix64(counters) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def blur_kernel_size(size: int, frac: float) -> int:
    """The odd kernel nearest below ``frac`` of the image side, at least 3 (28 px → 3, 224 px → 23)."""
    return max(3, 2 * int(frac * size / 2) + 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (torchvision's rgb_to_grayscale) as ``[B, 1, H, W]``; grey images as they are."""
    if x.shape[1] == 1:
        return x
    return (0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _bcast(factor)).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    return (_bcast(factor) * x + (1 - _bcast(factor)) * mean).clamp(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (_bcast(factor) * x + (1 - _bcast(factor)) * _grey(x)).clamp(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    hsv = _rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0:1] + _bcast(shift), 1.0)
    return _hsv_to_rgb(torch.cat([h, hsv[:, 1:]], dim=1))


class SimCLRAugment:
    """Two augmented views of a uint8 batch ``[B, C, H, W]``: float ``[B, C, size, size]`` in [0, 1] each."""

    def __init__(self, cfg: AugmentConfig, size: int, channels: int) -> None:
        self.cfg = cfg
        self.size = int(size)
        self.channels = int(channels)
        self.kernel = blur_kernel_size(self.size, cfg.blur_kernel_frac)
        s = cfg.jitter_strength
        #: the colour operations that exist for these images, in torchvision's ColorJitter numbering
        self.ops = ("brightness", "contrast", "saturation", "hue") if channels == 3 else ("brightness", "contrast")
        self.factor_ranges = {"brightness": (max(0.0, 1 - 0.8 * s), 1 + 0.8 * s),
                              "contrast": (max(0.0, 1 - 0.8 * s), 1 + 0.8 * s),
                              "saturation": (max(0.0, 1 - 0.8 * s), 1 + 0.8 * s),
                              "hue": (-min(0.5, 0.2 * s), min(0.5, 0.2 * s))}

    # ----------------------------------------------------------------------------------------- parameters
    def params(self, seeds: torch.Tensor, view: int, height: int, width: int) -> dict[str, torch.Tensor]:
        """Per-sample parameters of view ``view`` (0 or 1): crop boxes ``top, left, h, w`` (pixels), ``flip``,
        ``jitter`` (applied?), ``factors`` ``[B, 4]`` (brightness, contrast, saturation, hue), ``order`` ``[B, k]``
        (the colour operations in the order applied), ``grey``, ``blur`` and ``sigma``."""
        c = self.cfg
        u = keyed_uniforms(seeds, 2 * DRAWS_PER_VIEW)[:, view * DRAWS_PER_VIEW:(view + 1) * DRAWS_PER_VIEW]
        b = len(u)
        # random resized crop: torchvision's RandomResizedCrop.get_params, all attempts at once
        area = height * width
        scale = c.crop_scale[0] + u[:, 0:CROP_ATTEMPTS] * (c.crop_scale[1] - c.crop_scale[0])
        log_lo, log_hi = math.log(c.crop_ratio[0]), math.log(c.crop_ratio[1])
        aspect = np.exp(log_lo + u[:, CROP_ATTEMPTS:2 * CROP_ATTEMPTS] * (log_hi - log_lo))
        w = np.round(np.sqrt(area * scale * aspect)).astype(np.int64)
        h = np.round(np.sqrt(area * scale / aspect)).astype(np.int64)
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = ok.argmax(axis=1)
        found = ok.any(axis=1)
        rows = np.arange(b)
        cw, ch = w[rows, first], h[rows, first]
        # the fallback when no attempt fits: the central crop of the allowed aspect ratios
        in_ratio = width / height
        if in_ratio < c.crop_ratio[0]:
            fw, fh = width, int(round(width / c.crop_ratio[0]))
        elif in_ratio > c.crop_ratio[1]:
            fw, fh = int(round(height * c.crop_ratio[1])), height
        else:
            fw, fh = width, height
        cw, ch = np.where(found, cw, fw), np.where(found, ch, fh)
        k = 2 * CROP_ATTEMPTS
        top = np.where(found, np.floor(u[:, k] * (height - ch + 1)), (height - ch) // 2).astype(np.int64)
        left = np.where(found, np.floor(u[:, k + 1] * (width - cw + 1)), (width - cw) // 2).astype(np.int64)
        k += 2
        flip = u[:, k] < c.flip_p
        k += 1
        jitter = u[:, k] < c.jitter_p
        factors = np.empty((b, 4))
        for j, name in enumerate(("brightness", "contrast", "saturation", "hue")):
            lo, hi = self.factor_ranges[name]
            factors[:, j] = lo + u[:, k + 1 + j] * (hi - lo)
        order = np.argsort(u[:, k + 5:k + 5 + len(self.ops)], axis=1, kind="stable")
        k += 9
        grey = (u[:, k] < c.grayscale_p) & (self.channels == 3)
        k += 1
        blur = u[:, k] < c.blur_p
        sigma = c.blur_sigma[0] + u[:, k + 1] * (c.blur_sigma[1] - c.blur_sigma[0])
        as_t = torch.from_numpy
        return {"top": as_t(top), "left": as_t(left), "height": as_t(ch), "width": as_t(cw), "flip": as_t(flip),
                "jitter": as_t(jitter), "factors": as_t(factors).float(), "order": as_t(order), "grey": as_t(grey),
                "blur": as_t(blur), "sigma": as_t(sigma).float()}

    # ----------------------------------------------------------------------------------------- operations
    def crop_flip(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Every sample's crop box resized to ``size`` and flipped where drawn, in one ``grid_sample``.

        The sampling positions are those of torchvision's ``resized_crop`` (bilinear, ``align_corners=False``,
        positions clamped to the crop box), so a view equals ``hflip(resized_crop(image, top, left, h, w, size,
        antialias=False))``; without the anti-aliasing torchvision applies when a crop is shrunk."""
        n, _, height, width = x.shape
        dev = x.device
        top, left = p["top"].to(dev, torch.float32)[:, None], p["left"].to(dev, torch.float32)[:, None]
        ch, cw = p["height"].to(dev, torch.float32)[:, None], p["width"].to(dev, torch.float32)[:, None]
        centres = torch.arange(self.size, device=dev, dtype=torch.float32)[None, :] + 0.5
        xs = torch.minimum(torch.maximum(left + centres * cw / self.size - 0.5, left), left + cw - 1)
        ys = torch.minimum(torch.maximum(top + centres * ch / self.size - 0.5, top), top + ch - 1)
        xs = torch.where(p["flip"].to(dev)[:, None], xs.flip(1), xs)
        gx = ((2 * xs + 1) / width - 1)[:, None, :].expand(n, self.size, self.size)
        gy = ((2 * ys + 1) / height - 1)[:, :, None].expand(n, self.size, self.size)
        grid = torch.stack([gx, gy], dim=-1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def colour(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Colour jitter (operations in each sample's own order, where drawn), then grayscale where drawn."""
        dev = x.device
        jitter = p["jitter"].to(dev)
        factors = p["factors"].to(dev)
        order = p["order"].to(dev)
        ops = {"brightness": lambda v: adjust_brightness(v, factors[:, 0]),
               "contrast": lambda v: adjust_contrast(v, factors[:, 1]),
               "saturation": lambda v: adjust_saturation(v, factors[:, 2]),
               "hue": lambda v: adjust_hue(v, factors[:, 3])}
        if bool(jitter.any()):
            for slot in range(len(self.ops)):
                for j, name in enumerate(self.ops):
                    mask = jitter & (order[:, slot] == j)
                    if bool(mask.any()):
                        x = torch.where(_bcast(mask), ops[name](x), x)
        grey = p["grey"].to(dev)
        if bool(grey.any()):
            x = torch.where(_bcast(grey), _grey(x).expand_as(x), x)
        return x

    def gaussian_blur(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Separable Gaussian blur with each sample's σ (reflect padding, as torchvision), where drawn."""
        blur = p["blur"].to(x.device)
        if not bool(blur.any()):
            return x
        n, c, h, w = x.shape
        half = self.kernel // 2
        t = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
        sigma = p["sigma"].to(x.device, x.dtype)
        k = torch.exp(-0.5 * (t[None, :] / sigma[:, None]) ** 2)
        k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [n*c, K]
        y = F.pad(x.reshape(1, n * c, h, w), (half, half, half, half), mode="reflect")
        y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)
        y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c).view(n, c, h, w)
        return torch.where(_bcast(blur), y, x)

    def view(self, images: torch.Tensor, seeds: torch.Tensor, view: int) -> torch.Tensor:
        """One view of every sample: uint8 (or [0, 1] float) ``[B, C, H, W]`` → float ``[B, C, size, size]``."""
        x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
        p = self.params(seeds, view, x.shape[-2], x.shape[-1])
        x = self.crop_flip(x, p)
        x = self.colour(x, p)
        return self.gaussian_blur(x, p)

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view(images, seeds, 0), self.view(images, seeds, 1)
