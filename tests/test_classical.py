import pytest
import torch
from conftest import make_face
from PIL import Image

from photosketch.classical import (
    STYLES,
    LineDrawing,
    PencilSketch,
    XDoG,
    build_style,
    gaussian_blur,
    line_drawing,
    sparse_drawing,
)
from photosketch.image import pil_to_tensor


def _close(a, b, atol=1e-3):
    # XDoG multiplies rounding noise by p (20) and the thresholds / line thinning are
    # discontinuous, so float noise from different conv kernels may flip a rare pixel.
    return a.shape == b.shape and ((a - b).abs() > atol).float().mean().item() < 1e-3


def _face(size=(64, 64), seed=0):
    return pil_to_tensor(make_face(size, seed)).unsqueeze(0)


@pytest.mark.parametrize("name", sorted(STYLES))
@pytest.mark.parametrize("size", [(64, 64), (33, 47), (8, 8), (1, 5)])
def test_shape_and_range(name, size):
    x = torch.rand(2, 3, *size) * 2 - 1
    y = build_style(name)(x)
    assert y.shape == (2, 1, *size)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert y.min() >= -1 and y.max() <= 1


@pytest.mark.parametrize("name", sorted(STYLES))
def test_grayscale_input_is_luminance(name):
    gray = torch.rand(1, 1, 32, 32) * 2 - 1
    style = build_style(name)
    assert _close(style(gray), style(gray.expand(1, 3, 32, 32)))


def test_xdog_sketch_of_a_face_is_mostly_white_with_dark_lines():
    y = (XDoG()(_face()) + 1) / 2
    assert (y > 0.5).float().mean() > 0.7
    assert (y < 0.5).float().mean() > 0.01


@pytest.mark.parametrize("name", sorted(STYLES))
def test_strength_darkens_monotonically(name):
    x = _face()
    style = build_style(name)
    outs = [style(x, strength=s) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    means = [o.mean().item() for o in outs]
    assert means == sorted(means, reverse=True) and means[0] > means[-1]
    for lighter, darker in zip(outs, outs[1:]):  # pointwise, not only on average
        assert (darker <= lighter + 1e-6).all()
    assert torch.equal(style(x), style(x, strength=0.5))  # default strength is 0.5


@pytest.mark.parametrize("name", sorted(STYLES))
def test_batch_equals_single_images(name):
    x = torch.cat([_face(seed=0), _face(seed=1), torch.rand(1, 3, 64, 64) * 2 - 1])
    style = build_style(name)
    batch = style(x)
    single = torch.cat([style(x[i : i + 1]) for i in range(3)])
    assert _close(batch, single)


def test_bad_strength_and_unknown_style():
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        XDoG()(_face(), strength=1.5)
    with pytest.raises(KeyError, match="lines, pencil, xdog"):
        build_style("canny")
    with pytest.raises(ValueError, match="sigma must be > 0"):
        PencilSketch(sigma=0)


def test_gaussian_blur_preserves_constants_and_mass():
    x = torch.full((1, 2, 9, 7), 0.3)
    assert torch.allclose(gaussian_blur(x, 2.0), x, atol=1e-6)
    impulse = torch.zeros(1, 1, 31, 31)
    impulse[..., 15, 15] = 1
    assert gaussian_blur(impulse, 1.5).sum().item() == pytest.approx(1.0, abs=1e-5)


def test_line_drawing_is_thin_black_on_white():
    photo = make_face((128, 128))
    drawing = line_drawing(photo)
    assert isinstance(drawing, Image.Image) and drawing.mode == "L" and drawing.size == photo.size
    t = pil_to_tensor(drawing, 1)
    assert (t > 0.8).float().mean() > 0.9  # mostly white paper
    assert (t < 0).float().mean() > 0.003  # with some dark lines
    # thin: eroding the ink by one pixel in both directions removes almost all of it
    ink = (t < 0).float()[None]
    core = -torch.nn.functional.max_pool2d(-ink, 3, 1, 1)
    assert core.sum() <= 0.1 * ink.sum()
    # tensor in == PIL in
    assert _close(pil_to_tensor(line_drawing(pil_to_tensor(photo)), 1), t, atol=0.01)


def test_styles_are_plain_modules_without_weights():
    for cls in (XDoG, PencilSketch, LineDrawing):
        m = cls()
        assert isinstance(m, torch.nn.Module) and not list(m.parameters())
        assert cls(**m.config()).config() == m.config()


def test_sparse_drawing_is_a_few_seeded_strokes():
    import numpy as np

    face = make_face((96, 120))
    first = sparse_drawing(face, seed=3)
    assert first.mode == "L" and first.size == face.size
    assert np.array_equal(np.asarray(first), np.asarray(sparse_drawing(face, seed=3)))  # seeded
    assert not np.array_equal(np.asarray(first), np.asarray(sparse_drawing(face, seed=4)))
    ink = {d: (np.asarray(sparse_drawing(face, seed=0, detail=d, brush=2)) < 128).mean() for d in (0.0, 1.0)}
    dense = (np.asarray(line_drawing(face)) < 128).mean()
    assert 0 < ink[0.0] <= ink[1.0]  # more detail, more strokes
    assert ink[0.0] < 0.25 and np.asarray(first).mean() > 180  # mostly white paper
    thick = (np.asarray(sparse_drawing(face, seed=0, detail=0.5, brush=8)) < 128).mean()
    assert thick > (np.asarray(sparse_drawing(face, seed=0, detail=0.5, brush=1.5)) < 128).mean()
    assert dense > 0
    with pytest.raises(ValueError, match="brush"):
        sparse_drawing(face, brush=0)
