"""photosketch.image: array inputs in the value ranges users pass."""

import numpy as np
import pytest

from photosketch.image import ImageLoadError, load_image
from tests.conftest import make_face


def test_float_arrays_in_0_1_and_0_255_give_the_same_image():
    pixels = np.asarray(make_face((32, 40)))
    expected = np.asarray(load_image(pixels))
    assert np.array_equal(np.asarray(load_image(pixels.astype(np.float32) / 255)), expected)
    assert np.array_equal(np.asarray(load_image(pixels.astype(np.float64))), expected)  # not a blank white image
    with pytest.raises(ImageLoadError, match=r"expected \[0, 1\] or \[0, 255\]"):
        load_image(pixels.astype(np.float32) * 100)


def test_luminance_matches_pil_convert_L():
    import torch
    from PIL import Image

    from photosketch.image import luminance, pil_to_tensor

    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    y = luminance(pil_to_tensor(rgb, 3)[None])
    assert y.shape == (1, 1, 8, 8)
    assert torch.allclose(y[0], pil_to_tensor(rgb.convert("L"), 1), atol=1 / 127.5)  # PIL rounds to 8 bits
