"""The augmentation blocks of the SuperPoint configs: random homographies and photometric changes.

The dataclasses live here, apart from the code that applies them (:mod:`torchrepro.superpoint.homography`,
:mod:`torchrepro.superpoint.photometric`), so that validating a config needs neither torch nor OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torchrepro.core.errors import ConfigError

__all__ = ["HomographyConfig", "PHOTOMETRIC_PRIMITIVES", "PhotometricConfig"]

#: the photometric primitives, in the order of the shapes config (the reference's module lists the same six)
PHOTOMETRIC_PRIMITIVES: tuple[str, ...] = ("random_brightness", "random_contrast", "additive_speckle_noise",
                                           "additive_gaussian_noise", "additive_shade", "motion_blur")


@dataclass
class HomographyConfig:
    """Parameters of :func:`torchrepro.superpoint.homography.sample_homography`, with the reference's keys.

    Defaults are the MagicPoint synthetic-shapes config (rpautrat ``configs/magic-point_shapes.yaml`` =
    eric-yyjau ``configs/magicpoint_shapes_pair.yaml``, ``augmentation.homographic.params``); ``n_scales`` and
    ``n_angles`` are absent there and take the reference function's defaults. For homographic adaptation of real
    images the reference uses ``patch_ratio`` 0.85 (``magic-point_coco_export.yaml``) and its function default is
    0.5 -- set it in the recipe config.

    * ``translation`` / ``rotation`` / ``scaling`` / ``perspective``: enable each component.
    * ``patch_ratio``: side of the centred source patch, as a fraction of the image side, that fills the warped
      image before the random components move it (0.8: the warp zooms in by 1/0.8 on average).
    * ``perspective_amplitude_x`` / ``_y``: the corners move by truncated normals of std ``amplitude / 2``
      (|shift| ≤ amplitude), in fractions of the image side; left and right edges move independently in x, the
      top/bottom corners symmetrically in y (a keystone).
    * ``scaling_amplitude``: the patch is scaled about its centre by ``1 + N(0, amplitude / 2)``, truncated at
      two standard deviations, i.e. by a factor in ``[1 - amplitude, 1 + amplitude]``; ``n_scales`` candidates.
    * ``max_angle``: rotations (radians) are drawn from ``n_angles`` evenly spaced angles in
      ``[-max_angle, max_angle]``.
    * ``allow_artifacts``: when false, only candidates keeping the patch inside the image are kept (no black
      border in the warp) and the perspective amplitudes are capped by the free margin ``(1 - patch_ratio) / 2``.
    * ``translation_overflow``: with artifacts allowed, how far (fraction of the image side) the patch may be
      translated beyond the image border.
    """

    translation: bool = True
    rotation: bool = True
    scaling: bool = True
    perspective: bool = True
    scaling_amplitude: float = 0.2
    perspective_amplitude_x: float = 0.2
    perspective_amplitude_y: float = 0.2
    patch_ratio: float = 0.8
    max_angle: float = 1.57
    allow_artifacts: bool = True
    n_scales: int = 5
    n_angles: int = 25
    translation_overflow: float = 0.05

    def effective_perspective_amplitudes(self) -> tuple[float, float]:
        """The (x, y) perspective amplitudes the sampler uses: capped by the free margin without artifacts."""
        amp_x, amp_y = float(self.perspective_amplitude_x), float(self.perspective_amplitude_y)
        if not self.allow_artifacts:
            margin = (1.0 - float(self.patch_ratio)) / 2.0
            amp_x, amp_y = min(amp_x, margin), min(amp_y, margin)
        return amp_x, amp_y

    def check(self, where: str) -> None:
        """Raise :class:`ConfigError` naming the first key whose value can produce a degenerate or invalid warp."""
        for key in ("translation", "rotation", "scaling", "perspective", "allow_artifacts"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"config key '{where}.{key}' must be true or false, got {getattr(self, key)!r}")
        for key in ("scaling_amplitude", "perspective_amplitude_x", "perspective_amplitude_y", "patch_ratio",
                    "max_angle", "translation_overflow"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"config key '{where}.{key}' must be a finite number, got {value!r}")
        for key in ("n_scales", "n_angles"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"config key '{where}.{key}' must be an integer >= 1 (the number of candidates "
                                  f"the sampler draws), got {value!r}")
        p = self.patch_ratio
        if not 0.0 < p <= 1.0:
            raise ConfigError(f"config key '{where}.patch_ratio' is {p}; it must be in (0, 1] (the fraction of the "
                              f"image side the sampled patch covers): e.g. 0.8 (shapes) or 0.85 (adaptation)")
        if not 0.0 <= self.scaling_amplitude < 1.0:
            raise ConfigError(f"config key '{where}.scaling_amplitude' is {self.scaling_amplitude}; it must be in "
                              f"[0, 1): scales are drawn in [1 - amplitude, 1 + amplitude] (a normal of std "
                              f"amplitude/2 truncated at 2 std), so amplitude >= 1 can draw a scale <= 0")
        self._check_perspective(where)
        if self.max_angle < 0:
            raise ConfigError(f"config key '{where}.max_angle' is {self.max_angle}; it must be >= 0 (radians, "
                              f"angles are drawn in [-max_angle, max_angle]): e.g. 1.57")
        if not 0.0 <= self.translation_overflow < p / 2:
            raise ConfigError(f"config key '{where}.translation_overflow' is {self.translation_overflow}; it must "
                              f"be in [0, patch_ratio/2 = {p / 2:g}): a larger overflow can translate more than half "
                              f"of the patch out of the image, leaving a mostly black warp: e.g. 0.05")

    def _check_perspective(self, where: str) -> None:
        # The keystone moves the left corners by (hl, ±d) and the right ones by (hr, ∓d) with |hl|, |hr| <= amp_x
        # and |d| <= amp_y (2-std truncation). The left and right edges stay vertical, of heights p ∓ 2d, and the
        # top edge spans p + hr - hl in x: the quadrilateral stays a convex trapezoid iff 2·amp < p on both axes.
        # Later scaling/rotation/translation are similarities, so this is the whole condition.
        for key, amp in zip(("perspective_amplitude_x", "perspective_amplitude_y"),
                            self.effective_perspective_amplitudes()):
            value = getattr(self, key)
            if value < 0:
                raise ConfigError(f"config key '{where}.{key}' is {value}; it must be >= 0 (the largest corner shift, "
                                  f"as a fraction of the image side): e.g. 0.2")
            if self.perspective and amp >= self.patch_ratio / 2:
                raise ConfigError(f"config key '{where}.{key}' is {value}; it must be < patch_ratio/2 = "
                                  f"{self.patch_ratio / 2:g}: opposite patch corners can shift by up to the amplitude "
                                  f"each, so a larger value lets the corners cross (a degenerate warp)")


@dataclass
class PhotometricConfig:
    """The photometric augmentation of the shapes config (reference key names; each is a parameter of one
    primitive, and the names do not clash). ``primitives`` lists those applied (default: all six, in the shapes
    config's order); with ``random_order`` (the reference's default) they run in a fresh random order per image.

    * ``max_abs_change``: random_brightness, grey levels (75).
    * ``strength_range``: random_contrast, factor range ([0.3, 1.8]).
    * ``stddev_range``: additive_gaussian_noise, std range in grey levels ([0, 15]).
    * ``prob_range``: additive_speckle_noise, per-pixel black/white probability range ([0, 0.0035]).
    * ``nb_ellipses``, ``transparency_range``, ``kernel_size_range``, ``kernel_reference_size``: additive_shade
      (20, [-0.5, 0.8], [50, 100] px at short side 120 -- see :func:`torchrepro.superpoint.photometric.additive_shade`).
    * ``max_kernel_size``: motion_blur, largest kernel side (7).
    """

    enable: bool = True
    primitives: list[str] = field(default_factory=lambda: list(PHOTOMETRIC_PRIMITIVES))
    random_order: bool = True
    max_abs_change: float = 75.0
    strength_range: list[float] = field(default_factory=lambda: [0.3, 1.8])
    stddev_range: list[float] = field(default_factory=lambda: [0.0, 15.0])
    prob_range: list[float] = field(default_factory=lambda: [0.0, 0.0035])
    nb_ellipses: int = 20
    transparency_range: list[float] = field(default_factory=lambda: [-0.5, 0.8])
    kernel_size_range: list[int] = field(default_factory=lambda: [50, 100])
    kernel_reference_size: int = 120
    max_kernel_size: int = 7

    def check(self, where: str) -> None:
        """Raise :class:`ConfigError` naming the first bad key and what it accepts."""
        for key in ("enable", "random_order"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"config key '{where}.{key}' must be true or false, got {getattr(self, key)!r}")
        self._check_primitives(where)
        if not _is_number(self.max_abs_change) or not 0 <= self.max_abs_change <= 255:
            raise ConfigError(f"config key '{where}.max_abs_change' must be a number in [0, 255] (grey levels), "
                              f"got {self.max_abs_change!r}: e.g. 75")
        _check_range(self.strength_range, f"{where}.strength_range", 0.0, math.inf, "contrast factors, e.g. [0.3, 1.8]")
        _check_range(self.stddev_range, f"{where}.stddev_range", 0.0, math.inf,
                     "noise std in grey levels, e.g. [0, 15]")
        # a probability above 0.5 would make the black (u <= p) and white (u >= 1 - p) events overlap
        _check_range(self.prob_range, f"{where}.prob_range", 0.0, 0.5, "speckle probabilities, e.g. [0, 0.0035]")
        _check_range(self.transparency_range, f"{where}.transparency_range", -1.0, 1.0,
                     "shade strengths (> 0 darkens, < 0 brightens), e.g. [-0.5, 0.8]")
        _check_range(self.kernel_size_range, f"{where}.kernel_size_range", 1, math.inf,
                     "Gaussian kernel sides in px, e.g. [50, 100]", integers=True)
        for key, low in (("nb_ellipses", 0), ("kernel_reference_size", 0), ("max_kernel_size", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"config key '{where}.{key}' must be an integer >= {low}, got {value!r}")

    def _check_primitives(self, where: str) -> None:
        names = self.primitives
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"config key '{where}.primitives' must be a list of names among "
                              f"{', '.join(PHOTOMETRIC_PRIMITIVES)}; got {names!r}")
        unknown = [n for n in names if n not in PHOTOMETRIC_PRIMITIVES]
        if unknown:
            raise ConfigError(f"config key '{where}.primitives' names unknown primitive(s) {', '.join(unknown)}: "
                              f"the primitives are {', '.join(PHOTOMETRIC_PRIMITIVES)}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"config key '{where}.primitives' lists {', '.join(repeated)} more than once: "
                              f"list each primitive at most once")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(value: object, key: str, low: float, high: float, meaning: str, integers: bool = False) -> None:
    kind = int if integers else (int, float)
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, kind) and not isinstance(v, bool) and math.isfinite(v) for v in value)
          and low <= value[0] <= value[1] <= high)
    if not ok:
        bounds = f"{low:g} <= min <= max" + (f" <= {high:g}" if math.isfinite(high) else "")
        raise ConfigError(f"config key '{key}' needs two {'integers' if integers else 'numbers'} [min, max] with "
                          f"{bounds} ({meaning}), got {value!r}")


def _adaptation_homographies() -> HomographyConfig:
    """The random warps of homographic adaptation: rpautrat ``magic-point_coco_export.yaml`` merged into
    ``homography_adaptation_default_config`` (its ``max_angle`` π; ``n_scales`` / ``n_angles`` /
    ``translation_overflow`` are ``sample_homography``'s defaults 5, 25, 0) -- the same values as eric-yyjau
    ``magicpoint_coco_export.yaml``."""
    return HomographyConfig(translation=True, rotation=True, scaling=True, perspective=True, scaling_amplitude=0.2,
                            perspective_amplitude_x=0.2, perspective_amplitude_y=0.2, patch_ratio=0.85,
                            max_angle=math.pi, allow_artifacts=True, n_scales=5, n_angles=25,
                            translation_overflow=0.0)


#: how homographic adaptation combines the un-warped heatmaps (the reference's ``aggregation``)
AGGREGATIONS: tuple[str, ...] = ("sum", "max")


@dataclass
class AdaptationConfig:
    """Homographic Adaptation (SuperPoint §5, Eq. 10–11) and the pseudo ground truth it exports.

    Defaults: the reference export configs (rpautrat ``magic-point_coco_export.yaml``, eric-yyjau
    ``magicpoint_coco_export.yaml``), which agree on everything but ``top_k``.

    * ``num_homographies``: N_h, warps per image *including the identity* (the reference's ``num``: the identity
      plus ``num - 1`` random warps); the paper uses 100 (§5.2, Fig. 7).
    * ``homographies``: the random warps (:func:`_adaptation_homographies`).
    * ``valid_border_margin``: a warp counts for a source pixel only if the pixel lands at least this many pixels
      inside the warped image's valid area (rpautrat's export config: 3).
    * ``aggregation``: ``"sum"`` = the mean over the warps that see the pixel (the reference's default and the
      paper's Eq. 11), or ``"max"``.
    * ``detection_threshold`` (0.015), ``nms_radius`` (4), ``top_k`` (600: eric-yyjau's export; rpautrat keeps
      all, ``null``), ``border`` (4: Magic Leap's demo / eric-yyjau's ``getPtsFromHeatmap``): how the aggregated
      heatmap becomes points.
    * ``batch_size``: warps per network call, an implementation knob that does not change the labels; null picks
      1 on the CPU (measured: batches of 120×160 warps are slower per warp there, the activations leave the cache)
      and 32 on an accelerator.
    """

    num_homographies: int = 100
    homographies: HomographyConfig = field(default_factory=_adaptation_homographies)
    valid_border_margin: int = 3
    aggregation: str = "sum"
    detection_threshold: float = 0.015
    nms_radius: int = 4
    top_k: int | None = 600
    border: int = 4
    batch_size: int | None = None

    def check(self, where: str) -> None:
        """Raise :class:`ConfigError` naming the first bad key and what it accepts."""
        for key, low in (("num_homographies", 1), ("valid_border_margin", 0), ("nms_radius", 0), ("border", 0),
                         ("batch_size", 1)):
            value = getattr(self, key)
            if key == "batch_size" and value is None:  # chosen per device
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"config key '{where}.{key}' must be an integer >= {low}, got {value!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"config key '{where}.aggregation' is {self.aggregation!r}: choose 'sum' (the mean "
                              f"over the warps that see a pixel, the reference's) or 'max'")
        t = self.detection_threshold
        if not _is_number(t) or not 0.0 <= t < 1.0:
            raise ConfigError(f"config key '{where}.detection_threshold' must be in [0, 1) (a heatmap probability; "
                              f"the reference's export: 0.015), got {t!r}")
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigError(f"config key '{where}.top_k' must be an integer >= 1, or null to keep every point, "
                              f"got {k!r}")
        if not isinstance(self.homographies, HomographyConfig):
            raise ConfigError(f"config key '{where}.homographies' must be a mapping of homography parameters")
        self.homographies.check(f"{where}.homographies")
