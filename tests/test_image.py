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
