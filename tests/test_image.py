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


# One size limit (photosketch.image.MIN_SIDE / MAX_PIXELS) for the library, the CLI and the app.


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory):
    """A 51 MP PNG that is small on disk (1-bit, all white): refused from its header, never decoded."""
    from PIL import Image

    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", (8500, 6000), 1).save(path)
    return path


def test_one_size_limit_for_every_input_kind(tmp_path):
    from PIL import Image

    from photosketch.image import MIN_SIDE

    tiny = make_face((32, 32)).resize((MIN_SIDE - 1, MIN_SIDE))
    tiny.save(tmp_path / "tiny.png")
    for given in (tiny, np.asarray(tiny), tmp_path / "tiny.png", (tmp_path / "tiny.png").read_bytes()):
        with pytest.raises(ImageLoadError, match=f"below the {MIN_SIDE}x{MIN_SIDE} px minimum"):
            load_image(given)
    assert load_image(Image.new("L", (MIN_SIDE, MIN_SIDE))).size == (MIN_SIDE, MIN_SIDE)


def test_huge_image_is_refused_before_decoding(huge_png):
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(ImageLoadError, match="51.0 MP.*above the 50 MP limit"):
        load_image(huge_png)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20_000_000  # the 51 MP of pixels were never decoded


def test_cli_and_app_use_the_library_limit(huge_png, tmp_path, capsys):
    import app as space

    from photosketch import image
    from photosketch.cli import main

    assert (space.REFUSE_PIXELS, space.MIN_SIDE) == (image.MAX_PIXELS, image.MIN_SIDE)
    assert main(["to-sketch", str(huge_png), "-o", str(tmp_path / "out"), "--model", "pencil"]) == 1
    err = capsys.readouterr().err
    assert "above the 50 MP limit" in err and "Traceback" not in err
    with pytest.raises(space.gr.Error, match="above the 50 MP limit"):
        space.check_dimensions(8500, 6000, "huge.png")


def test_luminance_matches_pil_convert_L():
    import torch
    from PIL import Image

    from photosketch.image import luminance, pil_to_tensor

    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    y = luminance(pil_to_tensor(rgb, 3)[None])
    assert y.shape == (1, 1, 8, 8)
    assert torch.allclose(y[0], pil_to_tensor(rgb.convert("L"), 1), atol=1 / 127.5)  # PIL rounds to 8 bits
