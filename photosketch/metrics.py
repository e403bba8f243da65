"""Full-reference image metrics of the face-sketch literature: FSIM, SSIM and L1.

Pure torch / numpy (float64), no torchvision, scipy or scikit-image.

Every function takes two images of the same size as PIL images, numpy arrays (``uint8`` in
[0, 255], ``uint16``, or floats in [0, 1]; ``HxW``, ``HxWx3`` or ``HxWx4``) or torch tensors in
the project convention (``(C, H, W)`` or ``(1, C, H, W)`` in [-1, 1]). Alpha is dropped. FSIM
and SSIM compare luminance, ``Y = 0.299 R + 0.587 G + 0.114 B`` (the conversion in the FSIM
authors' ``FeatureSIM.m``), unrounded; a grayscale (``L``) image is used as it is, so sketches are
compared in gray.

References followed:

* SSIM: Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
  error visibility to structural similarity", IEEE TIP 13(4), 2004 -- as in the authors'
  ``ssim_index.m``: 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, statistics
  over the "valid" region only, population (not sample) variances, mean of the SSIM map. This equals
  ``skimage.metrics.structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)`` (which crops the same 5-pixel border). The later ``ssim.m`` also
  downsamples large images by ``round(min(H, W) / 256)`` first: ``ssim(..., downsample=True)``.
* FSIM / FSIMc: L. Zhang, L. Zhang, X. Mou, D. Zhang, "FSIM: A Feature Similarity Index for Image
  Quality Assessment", IEEE TIP 20(8):2378-2386, 2011 -- following the authors' ``FeatureSIM.m``
  (2010, "FSIM index with automatic downsampling"): averaging-filter downsampling by
  ``F = max(1, round(min(H, W) / 256))``; phase congruency by Kovesi's ``phasecong2`` as embedded
  there (P. Kovesi, "Image Features From Phase Congruency", Videre 1(3), 1999): log-Gabor filters,
  4 scales x 4 orientations, minWaveLength 6, mult 2, sigmaOnf 0.55, dThetaOnSigma 1.2, k = 2,
  noise threshold from the median smallest-scale energy, divided by 1.7; Scharr gradient
  magnitude; T1 = 0.85, T2 = 160 (and T3 = T4 = 200, lambda = 0.03 for FSIMc). This is an
  independent re-implementation of the published algorithm, not a copy of the MATLAB code.

Deviations (only where the reference returns NaN): phase congruency is 0 where every filter
amplitude is exactly 0 (MATLAB divides 0 by 0 there), and when neither image has any phase
congruency (two exactly flat images) FSIM is the plain mean of the remaining similarity map
instead of 0 / 0.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .image import LUMA

__all__ = ["MetricInput", "fsim", "fsimc", "l1", "phase_congruency", "ssim", "to_float_array"]

MetricInput = Union[Image.Image, np.ndarray, torch.Tensor]

_DTYPE = torch.float64


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------

def to_float_array(img: MetricInput) -> np.ndarray:
    """Any supported input -> float64 ``HxW`` or ``HxWx3`` array in [0, 255]."""
    if isinstance(img, Image.Image):
        from .image import load_image  # RGB or L, alpha flattened on white, 16-bit rescaled

        arr = np.asarray(load_image(img), dtype=np.float64)
    elif isinstance(img, torch.Tensor):
        t = img.detach().to("cpu", _DTYPE)
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"expected a single image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.ndim == 3:
            t = t.permute(1, 2, 0)  # CHW -> HWC
        arr = ((t.clamp(-1, 1) + 1) * 127.5).numpy()
    elif isinstance(img, np.ndarray):
        arr = img
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float64)
        elif arr.dtype == np.uint16:
            arr = arr.astype(np.float64) / 257.0
        elif arr.dtype == bool:
            arr = arr.astype(np.float64) * 255.0
        elif np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64) * 255.0  # floats are [0, 1], like photosketch.image
        elif np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype(np.float64)
        else:
            raise TypeError(f"unsupported array dtype {arr.dtype}")
    else:
        raise TypeError(f"expected a PIL image, numpy array or torch tensor; got {type(img).__name__}")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise ValueError(f"expected an HxW or HxWx3 image; got shape {arr.shape}")
    return arr


def _pair(a: MetricInput, b: MetricInput) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_float_array(a), to_float_array(b)
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"images differ in size: {x.shape[1]}x{x.shape[0]} vs {y.shape[1]}x{y.shape[0]}")
    return x, y


def _luma(arr: np.ndarray) -> torch.Tensor:
    """float64 luminance tensor (H, W) in [0, 255]."""
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(_DTYPE)
    if t.ndim == 3:
        # FeatureSIM.m: Y = 0.299 R + 0.587 G + 0.114 B (NTSC / ITU-R 601 luma).
        t = LUMA[0] * t[..., 0] + LUMA[1] * t[..., 1] + LUMA[2] * t[..., 2]
    return t


def _matlab_round(x: float) -> int:
    return int(math.floor(x + 0.5))  # MATLAB rounds halves away from zero, Python to even


def _downsample(t: torch.Tensor, factor: int) -> torch.Tensor:
    """``conv2(X, fspecial('average', F), 'same')`` then ``X(1:F:end, 1:F:end)``, for (..., H, W)."""
    if factor <= 1:
        return t
    # conv2 'same' keeps full-convolution rows floor(F/2) .. floor(F/2)+H-1, so output i averages
    # inputs i - (F - 1 - F//2) .. i + F//2, with zeros outside the image (counted in the mean).
    before, after = factor - 1 - factor // 2, factor // 2
    x = F.pad(t.reshape(-1, 1, *t.shape[-2:]), (before, after, before, after))
    x = F.avg_pool2d(x, factor, stride=factor, count_include_pad=True)
    return x.reshape(*t.shape[:-2], *x.shape[-2:])


def _check_size(h: int, w: int, minimum: int, name: str) -> None:
    if h < minimum or w < minimum:
        raise ValueError(f"{name} needs images of at least {minimum}x{minimum} pixels; got {w}x{h}")


# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------

def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    # fspecial('gaussian', 11, 1.5) is the outer product of this normalised 1-D kernel.
    r = torch.arange(size, dtype=_DTYPE) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: MetricInput, b: MetricInput, *, downsample: bool = False) -> float:
    """Mean SSIM of the luminance of ``a`` and ``b`` (Wang et al. 2004, ``ssim_index.m``).

    Symmetric; 1.0 for identical images; at most 1. Images need at least 11x11 pixels.

    Args:
        downsample: first average-downsample by ``max(1, round(min(H, W) / 256))`` like the
            authors' later ``ssim.m`` (off by default, which matches scikit-image).
    """
    x, y = _pair(a, b)
    img = torch.stack([_luma(x), _luma(y)])  # (2, H, W)
    if downsample:
        img = _downsample(img, max(1, _matlab_round(min(img.shape[-2:]) / 256)))
    _check_size(img.shape[-2], img.shape[-1], 11, "SSIM")
    L = 255.0
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    g = _gaussian_1d()
    # One valid-mode filtering of [x, y, x^2, y^2, xy] (filter2(w, ., 'valid') in ssim_index.m),
    # done separably: the 2-D Gaussian is the outer product of the 1-D one.
    xs, ys = img[0], img[1]
    stack = torch.stack([xs, ys, xs * xs, ys * ys, xs * ys])[:, None]
    m = F.conv2d(F.conv2d(stack, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))[:, 0]
    mu1, mu2 = m[0], m[1]
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1, s2, s12 = m[2] - mu1_sq, m[3] - mu2_sq, m[4] - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


# --------------------------------------------------------------------------------------------
# FSIM
# --------------------------------------------------------------------------------------------

# Kovesi's phasecong2 parameters as set in FeatureSIM.m.
_NSCALE, _NORIENT = 4, 4
_MIN_WAVELENGTH, _MULT, _SIGMA_ONF = 6.0, 2.0, 0.55
_DTHETA_ON_SIGMA, _K, _EPSILON = 1.2, 2.0, 1e-4
_T1, _T2, _T3, _T4, _LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03


def _freq_range(n: int) -> np.ndarray:
    # Frequencies normalised to +/- 0.5, with Kovesi's odd/even handling.
    if n % 2:
        return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
    return np.arange(-n / 2, n / 2) / n


_FILTER_CACHE: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _log_gabor_bank(rows: int, cols: int):
    """Filters (norient, nscale, rows, cols), their noise statistics, cached per size."""
    key = (rows, cols)
    if key in _FILTER_CACHE:
        return _FILTER_CACHE[key]
    x, y = np.meshgrid(_freq_range(cols), _freq_range(rows))
    radius = np.sqrt(x**2 + y**2)
    theta = np.arctan2(-y, x)  # -y: positive angles anticlockwise
    # Butterworth low-pass (radius 0.45, order 15) so no filter reaches the FFT's corners.
    lowpass = np.fft.ifftshift(1.0 / (1.0 + (radius / 0.45) ** (2 * 15)))
    radius, theta = np.fft.ifftshift(radius), np.fft.ifftshift(theta)  # zero frequency at [0, 0]
    radius[0, 0] = 1.0  # avoid log(0); the filters are zeroed there below
    sintheta, costheta = np.sin(theta), np.cos(theta)

    log_gabor = []
    for s in range(_NSCALE):
        fo = 1.0 / (_MIN_WAVELENGTH * _MULT**s)  # centre frequency
        g = np.exp(-(np.log(radius / fo) ** 2) / (2 * math.log(_SIGMA_ONF) ** 2)) * lowpass
        g[0, 0] = 0.0
        log_gabor.append(g)

    theta_sigma = math.pi / _NORIENT / _DTHETA_ON_SIGMA
    filters = np.empty((_NORIENT, _NSCALE, rows, cols))
    for o in range(_NORIENT):
        angle = o * math.pi / _NORIENT
        ds = sintheta * math.cos(angle) - costheta * math.sin(angle)
        dc = costheta * math.cos(angle) + sintheta * math.sin(angle)
        spread = np.exp(-(np.abs(np.arctan2(ds, dc)) ** 2) / (2 * theta_sigma**2))
        for s in range(_NSCALE):
            filters[o, s] = log_gabor[s] * spread
    filt = torch.from_numpy(filters)
    # Noise model (phasecong2): spatial filters rescaled to match power, their squared sums and
    # cross products, and the smallest scale's mean squared value.
    spatial = torch.fft.ifft2(filt).real * math.sqrt(rows * cols)
    sum_an2 = (spatial**2).sum(dim=(1, 2, 3))
    sum_aiaj = torch.zeros(_NORIENT, dtype=_DTYPE)
    for si in range(_NSCALE - 1):
        for sj in range(si + 1, _NSCALE):
            sum_aiaj += (spatial[:, si] * spatial[:, sj]).sum(dim=(1, 2))
    em_n = (filt[:, 0] ** 2).sum(dim=(1, 2))
    out = (filt, sum_an2, sum_aiaj, em_n)
    if len(_FILTER_CACHE) > 16:
        _FILTER_CACHE.clear()
    _FILTER_CACHE[key] = out
    return out


def _median(x: torch.Tensor) -> torch.Tensor:
    """MATLAB median: the mean of the two middle values for an even count."""
    v = x.flatten().sort().values
    n = v.numel()
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def phase_congruency(image: torch.Tensor) -> torch.Tensor:
    """Phase congruency map of a float64 (H, W) image (Kovesi's ``phasecong2`` as in FeatureSIM.m)."""
    image = image.to(_DTYPE)
    rows, cols = image.shape
    filt, sum_an2, sum_aiaj, em_n = _log_gabor_bank(rows, cols)
    eo = torch.fft.ifft2(torch.fft.fft2(image) * filt)  # (o, s, H, W) complex responses
    even, odd = eo.real, eo.imag
    amp = eo.abs()
    sum_an = amp.sum(dim=1)  # (o, H, W)
    sum_e, sum_o = even.sum(dim=1), odd.sum(dim=1)
    x_energy = torch.sqrt(sum_e**2 + sum_o**2) + _EPSILON
    mean_e, mean_o = (sum_e / x_energy)[:, None], (sum_o / x_energy)[:, None]
    # Energy = sum_s A_s (cos(dphi) - |sin(dphi)|) via dot and cross products with the mean phase.
    energy = (even * mean_e + odd * mean_o - (even * mean_o - odd * mean_e).abs()).sum(dim=1)

    # Noise compensation: the smallest scale's squared amplitude is Rayleigh-distributed for
    # Gaussian noise; its median gives the mean (median / ln 2), hence the noise power.
    thresholds = []
    for o in range(_NORIENT):
        mean_e2n = -_median(amp[o, 0] ** 2) / math.log(0.5)
        noise_power = mean_e2n / em_n[o]
        est_noise_energy2 = 2 * noise_power * sum_an2[o] + 4 * noise_power * sum_aiaj[o]
        tau = torch.sqrt(torch.clamp(est_noise_energy2 / 2, min=0))  # Rayleigh parameter
        est_noise_energy = tau * math.sqrt(math.pi / 2)
        est_noise_sigma = torch.sqrt((2 - math.pi / 2) * tau**2)
        # phasecong2's empirical 1/1.7 rescaling for the PC_2 measure.
        thresholds.append((est_noise_energy + _K * est_noise_sigma) / 1.7)
    t = torch.stack(thresholds)[:, None, None]
    energy_all = torch.clamp(energy - t, min=0).sum(dim=0)
    an_all = sum_an.sum(dim=0)
    return torch.where(an_all > 0, energy_all / torch.where(an_all > 0, an_all, 1.0), 0.0)


_SCHARR = torch.tensor([[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]], dtype=_DTYPE) / 16


def gradient_magnitude(y: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """FSIM's gradient magnitude (Zhang et al. 2011, eq. 4: Scharr operator) of ``y``, shaped
    (..., H, W), in ``y``'s dtype. ``eps`` goes under the square root so that the loss
    (:func:`photosketch.training.losses.gradient_similarity_loss`) has a gradient where the image is
    flat; the metric uses 0."""
    # conv2(Y, dx, 'same') with zero padding; correlation flips the sign only, not the magnitude.
    k = torch.stack([_SCHARR, _SCHARR.T])[:, None].to(y)
    g = F.conv2d(y.reshape(-1, 1, *y.shape[-2:]), k, padding=1)
    return torch.sqrt(g[:, 0] ** 2 + g[:, 1] ** 2 + eps).reshape(y.shape)


# FSIM's constant of the gradient-magnitude similarity (eq. 6), for images in [0, 255].
GRADIENT_SIMILARITY_T = _T2


def _yiq(arr: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    y = _luma(arr)
    if arr.ndim == 2:
        return y, None, None
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(_DTYPE)
    r, g, b = t[..., 0], t[..., 1], t[..., 2]
    i = 0.596 * r - 0.274 * g - 0.322 * b
    q = 0.211 * r - 0.523 * g + 0.312 * b
    return y, i, q


def _fsim(a: MetricInput, b: MetricInput, chromatic: bool) -> float:
    x, y = _pair(a, b)
    if chromatic and x.ndim != y.ndim:
        # One colour and one gray image: the gray one is R = G = B (I = Q = 0).
        x, y = (v if v.ndim == 3 else np.repeat(v[..., None], 3, -1) for v in (x, y))
    y1, i1, q1 = _yiq(x)
    y2, i2, q2 = _yiq(y)
    rows, cols = y1.shape
    _check_size(rows, cols, 2, "FSIM")
    factor = max(1, _matlab_round(min(rows, cols) / 256))
    y1, y2 = _downsample(y1, factor), _downsample(y2, factor)
    _check_size(*y1.shape, 2, "FSIM (after downsampling)")

    pc1, pc2 = phase_congruency(y1), phase_congruency(y2)
    g1, g2 = gradient_magnitude(y1), gradient_magnitude(y2)
    s_pc = (2 * pc1 * pc2 + _T1) / (pc1**2 + pc2**2 + _T1)  # FSIM eq. 5
    s_g = (2 * g1 * g2 + _T2) / (g1**2 + g2**2 + _T2)  # eq. 6
    sim = s_pc * s_g  # eq. 7
    if chromatic and i1 is not None and i2 is not None:
        # FSIMc (eq. 9-10): chrominance similarity of the I and Q channels, weighted by lambda.
        i1, i2, q1, q2 = (_downsample(c, factor) for c in (i1, i2, q1, q2))
        s_i = (2 * i1 * i2 + _T3) / (i1**2 + i2**2 + _T3)
        s_q = (2 * q1 * q2 + _T4) / (q1**2 + q2**2 + _T4)
        z = s_i * s_q
        # real((S_I S_Q)^lambda): MATLAB's principal power of a negative base is |z|^l e^{i pi l}.
        sim = sim * torch.where(z >= 0, z.abs() ** _LAMBDA, z.abs() ** _LAMBDA * math.cos(math.pi * _LAMBDA))
    pcm = torch.maximum(pc1, pc2)  # eq. 8 weighting
    total = pcm.sum()
    if total <= 0:
        return float(sim.mean())  # no phase congruency anywhere: MATLAB gives 0/0 here
    return float((sim * pcm).sum() / total)


def fsim(a: MetricInput, b: MetricInput, *, chromatic: bool = False) -> float:
    """FSIM of ``a`` and ``b`` (Zhang et al. 2011, the authors' ``FeatureSIM.m``).

    Compares luminance; ``chromatic=True`` gives FSIMc, which also compares the YIQ chrominance
    (equal to FSIM when both images are gray). Symmetric, 1.0 for identical images, at most 1.
    """
    return _fsim(a, b, chromatic)


def fsimc(a: MetricInput, b: MetricInput) -> float:
    """FSIMc: :func:`fsim` with chrominance (``FeatureSIM.m``'s second output)."""
    return _fsim(a, b, True)


# --------------------------------------------------------------------------------------------
# L1
# --------------------------------------------------------------------------------------------

def l1(a: MetricInput, b: MetricInput, *, color: bool = False) -> float:
    """Mean absolute error in [0, 1] units, on luminance (or on RGB with ``color=True``)."""
    x, y = _pair(a, b)
    if color:
        x, y = (v if v.ndim == 3 else np.repeat(v[..., None], 3, -1) for v in (x, y))
        return float(np.abs(x - y).mean() / 255.0)
    return float((_luma(x) - _luma(y)).abs().mean() / 255.0)
