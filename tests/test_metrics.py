import math

import numpy as np
import pytest
import torch
from PIL import Image

from photosketch import metrics
from photosketch.metrics import fsim, fsimc, l1, ssim

from conftest import make_face


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small float64 work, shared CI cores


def structured(h=48, w=56, seed=1) -> np.ndarray:
    """A gray face plus a grating: edges and texture at several scales, deterministic."""
    img = np.asarray(make_face((w, h), seed=seed).convert("L"), np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.7 * img + 0.3 * (127.5 + 127.5 * np.sin(xx / 2.5) * np.cos(yy / 3.5))
    return np.clip(img, 0, 255).astype(np.uint8)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(a, (0, 0), sigma)


def noisy(a: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(a.shape)
    return np.clip(a + sigma * n, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("metric", [fsim, ssim, fsimc])
def test_identity_is_one(metric):
    a = structured()
    assert metric(a, a) == pytest.approx(1.0, abs=1e-12)
    rgb = np.asarray(make_face((40, 36)))
    assert metric(rgb, rgb) == pytest.approx(1.0, abs=1e-12)


def test_ssim_constant_images_closed_form():
    # Constant images: sigma = 0, so SSIM is the luminance term (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
    a, b = np.full((16, 20), 100, np.uint8), np.full((16, 20), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 150 + c1) / (100**2 + 150**2 + c1), abs=1e-9)


def test_ssim_hand_computed_contrast_term():
    # Valid region of a 11x11 image is one window. x = constant 100 + one pixel of +d at the centre,
    # y = constant 100: means differ by w_c d, sigma_x^2 = w_c (1 - w_c) d^2, sigma_xy = 0.
    d = 50.0
    x = np.full((11, 11), 100.0)
    x[5, 5] += d
    y = np.full((11, 11), 100.0)
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    wc = (g[5] / g.sum()) ** 2
    mx, my, vx = 100 + wc * d, 100.0, wc * (1 - wc) * d**2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = (2 * mx * my + c1) * c2 / ((mx**2 + my**2 + c1) * (vx + c2))
    assert ssim(x / 255, y / 255) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("metric", [fsim, ssim])
def test_monotone_under_blur(metric):
    a = structured()
    scores = [metric(a, blur(a, s)) for s in (0.5, 1.0, 1.5, 2.0, 3.0)]
    assert all(x > y for x, y in zip(scores, scores[1:])), scores
    assert scores[0] < 1.0


@pytest.mark.parametrize("metric", [fsim, ssim])
def test_monotone_under_noise(metric):
    a = structured()
    scores = [metric(a, noisy(a, s)) for s in (4, 8, 16, 32)]
    assert all(x > y for x, y in zip(scores, scores[1:])), scores


@pytest.mark.parametrize("metric", [fsim, ssim, fsimc, l1])
def test_symmetric(metric):
    a, b = np.asarray(make_face((40, 36), seed=0)), np.asarray(make_face((40, 36), seed=3))
    b = blur(b, 1.0)
    assert metric(a, b) == metric(b, a)


@pytest.mark.parametrize("shape", [(33, 47), (47, 33), (41, 41)])
def test_odd_sizes_and_range(shape):
    a = structured(*shape)
    for b in (noisy(a, 20), blur(a, 2.0), 255 - a, np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)):
        f, s = fsim(a, b), ssim(a, b)
        assert 0.0 <= f <= 1.0 and math.isfinite(f)
        assert -1.0 <= s <= 1.0 and math.isfinite(s)


def test_inputs_agree_across_types():
    a, b = structured(), noisy(structured(), 10)
    expected = fsim(a, b), ssim(a, b), l1(a, b)
    as_pil = Image.fromarray(a), Image.fromarray(b)
    as_float = a / 255.0, b / 255.0
    as_tensor = tuple(torch.from_numpy(v / 127.5 - 1.0)[None] for v in (a, b))  # (1, H, W) in [-1, 1]
    for x, y in (as_pil, as_float, as_tensor):
        got = fsim(x, y), ssim(x, y), l1(x, y)
        assert got == pytest.approx(expected, abs=1e-9)


def test_gray_rgb_equivalence():
    # A sketch stored as RGB with equal channels scores like the same sketch in L.
    a, b = structured(), blur(structured(), 1.0)
    a3, b3 = (np.repeat(v[..., None], 3, -1) for v in (a, b))
    assert fsim(a3, b3) == pytest.approx(fsim(a, b), abs=1e-9)
    assert fsimc(a3, b3) == pytest.approx(fsim(a, b), abs=1e-9)  # no chrominance: FSIMc = FSIM
    assert ssim(a3, b3) == pytest.approx(ssim(a, b), abs=1e-9)


def test_l1_units():
    z = np.zeros((8, 8), np.uint8)
    assert l1(z, np.full((8, 8), 255, np.uint8)) == pytest.approx(1.0)
    assert l1(z, np.full((8, 8), 51, np.uint8)) == pytest.approx(0.2)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    assert l1(rgb, np.zeros_like(rgb), color=True) == pytest.approx(1 / 3)
    assert l1(rgb, np.zeros_like(rgb)) == pytest.approx(0.299)


def test_size_mismatch_and_tiny_inputs_raise():
    with pytest.raises(ValueError, match="differ in size"):
        fsim(np.zeros((20, 20), np.uint8), np.zeros((20, 21), np.uint8))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((10, 30), np.uint8), np.zeros((10, 30), np.uint8))


def test_flat_images_are_finite():
    # The reference divides 0 by 0 here; we return the plain mean of the similarity map.
    a, b = np.full((24, 24), 30, np.uint8), np.full((24, 24), 200, np.uint8)
    assert fsim(a, a) == 1.0
    assert math.isfinite(fsim(a, b))


def matlab_average_downsample(x: np.ndarray, f: int) -> np.ndarray:
    """conv2(X, ones(F) / F^2, 'same') then X(1:F:end, 1:F:end), as a sum of shifted copies."""
    h, w = x.shape
    before = f - 1 - f // 2  # 'same' keeps full-convolution rows floor(F/2) .. floor(F/2) + H - 1
    padded = np.pad(x, ((before, f // 2), (before, f // 2)))
    same = sum(padded[i:i + h, j:j + w] for i in range(f) for j in range(f)) / f**2
    return same[::f, ::f]


def test_matlab_round_and_downsampling():
    assert metrics._matlab_round(1.5) == 2 and metrics._matlab_round(2.5) == 3 and metrics._matlab_round(0.78) == 1
    x = np.arange(7 * 9, dtype=np.float64).reshape(7, 9) ** 1.3
    for f in (2, 3):
        got = metrics._downsample(torch.from_numpy(x), f).numpy()
        np.testing.assert_allclose(got, matlab_average_downsample(x, f), rtol=1e-12)


def test_fsim_downsamples_large_images():
    # min side 384 -> F = round(1.5) = 2, so FSIM of the full images is FSIM of their averaged halves.
    a = structured(384, 400).astype(np.float64)
    b = blur(a, 1.5)
    halves = [matlab_average_downsample(v, 2) / 255 for v in (a, b)]
    assert fsim(a / 255, b / 255) == pytest.approx(fsim(*halves), abs=1e-9)
    assert 0.5 < fsim(a / 255, b / 255) < 1.0


def test_regression_values():
    # Pinned outputs of this implementation (validated against the MATLAB FeatureSIM.m and ssim.m
    # reference outputs quoted in piq's test suite: goldhill/JPEG FSIM 0.89691, I01/i01_01_5 FSIM
    # 0.93674 and FSIMc 0.92587, goldhill SSIM (ssim.m) 0.8202 -- all reproduced to 5 digits).
    a = structured()
    b = blur(noisy(a, 8), 1.0)
    assert fsim(a, b) == pytest.approx(REGRESSION["fsim"], abs=1e-6)
    assert ssim(a, b) == pytest.approx(REGRESSION["ssim"], abs=1e-6)


REGRESSION = {"fsim": 0.9508168629113217, "ssim": 0.900146127386208}

