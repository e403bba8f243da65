"""Weight-free sketch styles, as ``nn.Module``s.

They follow the generator convention (``N x 3 x H x W`` RGB in [-1, 1] in, ``N x 1 x H x W`` in
[-1, 1] out; a 1-channel input is taken as luminance), so the pipeline, benchmarks and evaluation
treat them like learned generators. Everything is vectorised torch: separable Gaussian
convolutions and pointwise maths, any batch size and any spatial size, no loops over pixels.

Sizes (``sigma``) are in pixels of the image the module sees; the pipeline runs them at its working
size (256 px unless told otherwise), where the defaults were chosen.

``forward(x, strength=None)`` takes a strength in [0, 1] (default: the constructor's, 0.5); higher
is darker, and for every style the output is pointwise non-increasing in strength.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .image import LUMA, ImageInput, load_image, pil_to_tensor, tensor_to_pil

__all__ = ["STYLES", "LineDrawing", "PencilSketch", "XDoG", "build_style", "gaussian_blur", "line_drawing", "luminance",
           "sparse_drawing"]


def luminance(x: torch.Tensor) -> torch.Tensor:
    """NCHW in [-1, 1] -> N x 1 x H x W luminance in [0, 1] (ITU-R BT.601 weights, like PIL's ``L``)."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected an N x 3 x H x W (or N x 1 x H x W) tensor; got shape {tuple(x.shape)}")
    x = (x.float().clamp(-1, 1) + 1) / 2
    if x.shape[1] == 1:
        return x
    w = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))  # +-3 sigma holds 99.7% of the mass
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of an NCHW tensor (each channel alone), border reflected.

    Two 1-D convolutions cost O(r) per pixel instead of O(r^2) for the 2-D kernel.
    """
    if sigma <= 0:
        return x
    n, c, h, w = x.shape
    k = _gaussian_kernel(sigma, x.dtype, x.device)
    r = k.numel() // 2
    y = x.reshape(n * c, 1, h, w)
    # Reflection needs the pad to be smaller than the side; tiny images (8x8) replicate instead.
    mode = "reflect" if r < h and r < w else "replicate"
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def _check_strength(strength: float) -> float:
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1]; got {strength}")
    return strength


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return float(value)


class _Style(nn.Module):
    """Shared plumbing: typed config, strength handling, [0, 1] <-> [-1, 1]."""

    def __init__(self, strength: float) -> None:
        super().__init__()
        self.strength = _check_strength(strength)

    def config(self) -> dict:
        """The constructor arguments (JSON-able), like a learned model's ``config.json``."""
        return dict(self._config)

    def render(self, lum: torch.Tensor, strength: float) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, strength: float | None = None) -> torch.Tensor:
        s = self.strength if strength is None else _check_strength(strength)
        out = self.render(luminance(x), s)
        return out.clamp(0, 1).mul(2).sub(1).to(x.dtype if x.is_floating_point() else torch.float32)


class XDoG(_Style):
    """eXtended Difference-of-Gaussians (Winnemöller, Kyprianidis & Olsen 2012, "XDoG: An eXtended
    difference-of-Gaussians compendium including advanced image stylization", Computers & Graphics 36(6)).

    On luminance ``I`` in [0, 1]:

    * DoG with a variable threshold weight (paper, Sec. 2): ``D_{σ,k,τ}(I) = G_σ(I) − τ·G_{kσ}(I)``.
    * Re-parameterised as a sharpened image (paper, Sec. 2.3):
      ``S_{σ,k,p}(I) = (1 + p)·G_σ(I) − p·G_{kσ}(I) = G_σ(I) + p·D_{σ,k}(I)``, i.e. ``(1 + p)·D_{σ,k,τ}``
      with ``τ = p / (1 + p)``. Flat regions keep their intensity, edges get a ``p``-scaled overshoot.
    * Soft threshold (paper, Sec. 2.2):
      ``T_{ε,φ}(u) = 1 if u ≥ ε else 1 + tanh(φ·(u − ε))`` — white above ``ε``, a tanh ramp of
      sharpness ``φ`` below it (a large ``φ`` approaches a hard threshold).

    Args:
        sigma: σ of the smaller Gaussian, in pixels (scale of the lines).
        k: ratio of the two Gaussians' σ (1.6 approximates the Laplacian of Gaussian, Marr & Hildreth).
        p: edge emphasis (the paper's ``p``; ``τ = p / (1 + p)``).
        epsilon: threshold ``ε`` on the [0, 1] intensity scale; everything brighter is white.
        phi: tanh ramp sharpness ``φ`` (on the [0, 1] scale).
        strength: default strength in [0, 1]; it shifts ``ε`` by ``(strength − 0.5) · epsilon_range``
            (a higher ``ε`` turns more of the image dark, pointwise monotonically).
        epsilon_range: how far strength 0 / 1 move ``ε`` from its value at 0.5.
    """

    def __init__(
        self,
        sigma: float = 1.0,
        k: float = 1.6,
        p: float = 20.0,
        epsilon: float = 0.45,
        phi: float = 10.0,
        strength: float = 0.5,
        epsilon_range: float = 0.3,
    ) -> None:
        super().__init__(strength)
        self.sigma = _positive("sigma", sigma)
        self.k = _positive("k", k)
        self.p = float(p)
        self.epsilon = float(epsilon)
        self.phi = _positive("phi", phi)
        self.epsilon_range = float(epsilon_range)
        self._config = dict(sigma=self.sigma, k=self.k, p=self.p, epsilon=self.epsilon, phi=self.phi,
                            strength=self.strength, epsilon_range=self.epsilon_range)

    def sharpened(self, lum: torch.Tensor) -> torch.Tensor:
        """``S_{σ,k,p}`` (XDoG Sec. 2.3) of luminance in [0, 1]."""
        g1 = gaussian_blur(lum, self.sigma)
        g2 = gaussian_blur(lum, self.sigma * self.k)
        return (1 + self.p) * g1 - self.p * g2

    def render(self, lum: torch.Tensor, strength: float) -> torch.Tensor:
        u = self.sharpened(lum)
        eps = self.epsilon + (strength - 0.5) * self.epsilon_range
        # T_{ε,φ}: 1 above ε, 1 + tanh(φ(u − ε)) below (XDoG Sec. 2.2).
        return torch.where(u >= eps, torch.ones_like(u), 1 + torch.tanh(self.phi * (u - eps)))


class PencilSketch(_Style):
    """Colour-dodge pencil sketch: grayscale divided by its blurred inverse's complement.

    The classic recipe is ``dodge(G, blur(255 − G)) = 255·G / (255 − blur(255 − G))``. On [0, 1]
    and with a normalised (linear) blur, ``1 − blur(1 − G) = blur(G)``, so the sketch is
    ``G / blur(G)``: the image over its local mean. Flat areas go white; anything darker than its
    surroundings (edges, hair, eyes) stays as grey pencil strokes.

    Args:
        sigma: σ of the blur in pixels; larger gives broader, softer shading.
        gamma: contrast exponent at strength 0.5 (``out = dodge ** γ``).
        strength: default strength in [0, 1]; the exponent is ``gamma · 4 ** (strength − 0.5)``,
            so 0 / 1 halve / double it (higher is darker, pointwise).
    """

    def __init__(self, sigma: float = 6.0, gamma: float = 2.0, strength: float = 0.5) -> None:
        super().__init__(strength)
        self.sigma = _positive("sigma", sigma)
        self.gamma = _positive("gamma", gamma)
        self._config = dict(sigma=self.sigma, gamma=self.gamma, strength=self.strength)

    def render(self, lum: torch.Tensor, strength: float) -> torch.Tensor:
        dodge = lum / gaussian_blur(lum, self.sigma).clamp_min(1e-3)
        return dodge.clamp(0, 1) ** (self.gamma * 4.0 ** (strength - 0.5))


class LineDrawing(_Style):
    """Thin dark lines on white, like a person's pen drawing on a sketchpad.

    1. Smooth away skin texture and noise (Gaussian, ``smooth``) and take the DoG
       ``D = G_σ(I) − G_{kσ}(I)`` (the XDoG paper's ``D_{σ,k}`` with τ = 1): negative on the dark side
       of edges and along dark lines, near zero on flat areas (which stay white).
    2. Thin: keep only pixels where ``D`` is a local minimum across the line horizontally or
       vertically (an axis-aligned non-maximum suppression, as in Canny), giving ~1 px lines.
    3. Darkness from the line's contrast ``−D``, measured in units of the image's own DoG RMS so dim
       and contrasty photos give similar drawings: ``ink = clamp(φ·(−D/rms − ε), 0, 1)``.

    Args:
        sigma / k: the DoG scales in pixels.
        smooth: σ of the pre-blur (0 to disable).
        epsilon: contrast threshold (in DoG RMS units) below which no line is drawn.
        phi: ramp from faint to full black above the threshold.
        strength: default strength in [0, 1]; ``ε`` is scaled by ``2 ** (1 − 2·strength)``
            (lower threshold = more and darker lines, pointwise).
    """

    def __init__(
        self,
        sigma: float = 1.0,
        k: float = 1.6,
        smooth: float = 0.7,
        epsilon: float = 1.5,
        phi: float = 1.0,
        strength: float = 0.5,
    ) -> None:
        super().__init__(strength)
        self.sigma = _positive("sigma", sigma)
        self.k = _positive("k", k)
        self.smooth = float(smooth)
        self.epsilon = float(epsilon)
        self.phi = _positive("phi", phi)
        self._config = dict(sigma=self.sigma, k=self.k, smooth=self.smooth, epsilon=self.epsilon, phi=self.phi,
                            strength=self.strength)

    def render(self, lum: torch.Tensor, strength: float) -> torch.Tensor:
        lum = gaussian_blur(lum, self.smooth)
        d = gaussian_blur(lum, self.sigma) - gaussian_blur(lum, self.sigma * self.k)
        # Per-image scale (not per batch), so a batch gives the same drawings as single images.
        rms = d.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(2e-3)
        contrast = -d / rms
        # Thinning: a pixel is on a line's centre if no horizontal or no vertical neighbour is darker.
        pad = F.pad(d, (1, 1, 1, 1), mode="replicate")
        left, right = pad[..., 1:-1, :-2], pad[..., 1:-1, 2:]
        up, down = pad[..., :-2, 1:-1], pad[..., 2:, 1:-1]
        ridge = ((d <= left) & (d <= right)) | ((d <= up) & (d <= down))
        eps = self.epsilon * 2.0 ** (1 - 2 * strength)
        ink = (self.phi * (contrast - eps)).clamp(0, 1) * ridge
        return 1 - ink


#: Classical styles by name. ``build_style("xdog", sigma=1.0)``.
STYLES: dict[str, type[nn.Module]] = {
    "xdog": XDoG,
    "pencil": PencilSketch,
    "lines": LineDrawing,
}


def build_style(name: str, **kwargs) -> nn.Module:
    """Instantiate a classical style in eval mode; unknown names raise ``KeyError`` listing the valid ones."""
    try:
        cls = STYLES[name]
    except KeyError:
        raise KeyError(f"unknown style {name!r}; choose one of: {', '.join(sorted(STYLES))}") from None
    return cls(**kwargs).eval()


def line_drawing(photo: ImageInput | torch.Tensor, strength: float = 0.5, **kwargs) -> Image.Image:
    """A black-on-white line drawing of ``photo`` at its own size, as a PIL ``L`` image.

    ``photo`` is anything :func:`photosketch.image.load_image` reads, or a (1 x) C x H x W tensor in
    [-1, 1]. Keyword arguments configure :class:`LineDrawing`.
    """
    if isinstance(photo, torch.Tensor):
        x = photo if photo.ndim == 4 else photo.unsqueeze(0)
        if x.shape[0] != 1:
            raise ValueError(f"line_drawing takes one image; got a batch of {x.shape[0]}")
    else:
        x = pil_to_tensor(load_image(photo), channels=3).unsqueeze(0)
    with torch.inference_mode():
        return tensor_to_pil(LineDrawing(**kwargs).eval()(x, strength=strength))


def sparse_drawing(photo: ImageInput, seed: int = 0, *, detail: float | None = None, brush: float | None = None) -> Image.Image:
    """A few-stroke drawing of ``photo``, like what people draw on a sketchpad, at the photo's size (``L``).

    Sketch-to-photo models see artist sketches and dense line drawings in training, but people draw a
    handful of strokes (issue 15). This derives such drawings, seeded: the :func:`line_drawing` of a
    downscaled copy keeps only the larger contours (face outline, hair outline, brows, eyes, nose,
    mouth); each contour is simplified to a polyline (Douglas-Peucker), short ones and a random share of
    the rest are dropped, the points are jittered and everything is redrawn with one round brush.

    Args:
        seed: every random choice comes from ``numpy.random.default_rng(seed)``: same seed, same drawing.
        detail: 0 (fewest strokes) .. 1 (most); random in [0, 1] when ``None``.
        brush: stroke width in pixels at a 256-px short side (scaled with the image); random in
            [1.5, 4.5] when ``None``, like the app's brush sizes on its 512-px canvas.
    """
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    img = load_image(photo).convert("RGB")
    w, h = img.size
    detail = float(rng.uniform(0, 1)) if detail is None else min(max(float(detail), 0.0), 1.0)
    brush = float(rng.uniform(1.5, 4.5)) if brush is None else _positive("brush", brush)
    # Coarser copy = fewer, longer contours: 128 px (few strokes) to 224 px (more) on the short side.
    short = int(round(128 + 96 * detail))
    scale = short / min(w, h)
    small = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    ink = np.asarray(line_drawing(small, strength=0.5 + 0.3 * detail)) < 160
    contours, _ = cv2.findContours(ink.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    min_length = short * (0.06 - 0.035 * detail)  # drop specks and short texture strokes
    keep_share = 0.75 + 0.2 * detail
    canvas = np.full((h, w), 255, np.uint8)
    width = max(1, round(brush * min(w, h) / 256))
    for contour in contours:
        # A thin line's contour runs along both of its sides: its length is about twice the stroke's.
        if cv2.arcLength(contour, False) / 2 < min_length or rng.random() > keep_share:
            continue
        poly = cv2.approxPolyDP(contour, epsilon=0.8 + 0.8 * rng.random(), closed=False)[:, 0, :].astype(np.float64)
        poly += rng.normal(0.0, 0.4, poly.shape)  # a hand's wobble, in small-image pixels
        pts = np.round(poly / scale).astype(np.int32)
        cv2.polylines(canvas, [pts], isClosed=False, color=0, thickness=width, lineType=cv2.LINE_AA)
    return Image.fromarray(canvas, mode="L")
