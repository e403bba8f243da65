import numpy as np
import pytest
from PIL import Image

from photosketch.face import FaceDetector, crop_box, crop_face, detect_faces


def drawn_face(size=200, background=(230, 230, 230)) -> Image.Image:
    """A face drawing the Haar cascade really detects: hair, skin, brows, eyes, nose shadow, mouth.

    The frontal-face cascade keys on dark brows/eyes over brighter cheeks and a bright nose
    bridge between the eyes, so those are drawn with photo-like contrast and blurred.
    """
    import cv2

    u = size / 200
    img = np.full((size, size, 3), background, np.uint8)
    c = size // 2

    def ell(cx, cy, ax, ay, colour):
        cv2.ellipse(img, (int(cx), int(cy)), (max(1, int(ax * u)), max(1, int(ay * u))), 0, 0, 360, colour, -1)

    ell(c, c - 10 * u, 62, 80, (50, 40, 40))  # hair
    ell(c, c + 5 * u, 52, 68, (200, 170, 150))  # skin
    for dx in (-22, 22):
        ell(c + dx * u, c - 18 * u, 14, 4, (60, 50, 50))  # brows
        ell(c + dx * u, c - 5 * u, 10, 5, (40, 40, 40))  # eyes
    ell(c, c + 20 * u, 8, 4, (160, 130, 110))  # nose shadow
    ell(c, c + 40 * u, 18, 5, (140, 70, 70))  # mouth
    return Image.fromarray(cv2.GaussianBlur(img, (0, 0), 2 * u))


def _contains(outer, inner):
    ox, oy, ow, oh = outer
    ix, iy, iw, ih = inner
    return ox <= ix and oy <= iy and ix + iw <= ox + ow and iy + ih <= oy + oh


@pytest.mark.parametrize("size", [120, 200])
def test_detects_the_drawn_face(size):
    boxes = detect_faces(drawn_face(size))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    # the face (skin ellipse) is centred and ~half the image wide
    assert abs((x + w / 2) - size / 2) < 0.1 * size and 0.35 * size < w < 0.9 * size


def test_crop_contains_face_with_margin_in_a_larger_photo():
    photo = Image.new("RGB", (900, 600), (90, 120, 160))
    photo.paste(drawn_face(200), (600, 250))  # face box roughly (630..770, 290..430)
    detector = FaceDetector()
    (face,) = detector.detect(photo)
    crop, box = crop_face(photo, detector=detector)
    assert box is not None and crop.size == box[2:]
    assert _contains(box, face)
    assert face[2] / box[2] == pytest.approx(1 / 1.8, rel=0.02)  # face ~55 % of the crop's width
    assert box[3] / box[2] == pytest.approx(1.25, rel=0.02)  # CUFS-like 4:5 portrait
    assert np.array_equal(np.asarray(crop), np.asarray(photo.crop((box[0], box[1], box[0] + box[2], box[1] + box[3]))))


def test_crop_is_clamped_to_the_image():
    img = drawn_face(200)  # the face fills the frame: a margin would leave the image
    crop, box = crop_face(img)
    assert box is not None
    x, y, w, h = box
    assert x >= 0 and y >= 0 and x + w <= 200 and y + h <= 200
    assert crop.size == (w, h)
    # pure arithmetic: a narrow image cuts the width but keeps the height (hair and chin first)
    assert crop_box((0, 0, 50, 50), (60, 400)) == (0, 0, 60, 112)
    assert crop_box((350, 350, 50, 50), (400, 400)) == (310, 288, 90, 112)


def test_large_photo_is_detected_on_a_downscaled_copy():
    photo = Image.new("RGB", (4000, 3000), (120, 160, 200))
    photo.paste(drawn_face(800), (2500, 1200))
    (face,) = detect_faces(photo)
    assert _contains((2500, 1200, 800, 800), face)
    assert face[2] > 400  # reported in full-resolution pixels


@pytest.mark.parametrize(
    "img",
    [
        Image.new("RGB", (300, 200), (200, 200, 200)),
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)),
        Image.new("L", (16, 16), 128),
    ],
    ids=["flat", "noise", "tiny"],
)
def test_no_face_returns_the_whole_image(img):
    assert detect_faces(img) == []
    crop, box = crop_face(img)
    assert box is None and crop.size == img.size


def test_detector_is_cached_on_the_object_only():
    d = FaceDetector()
    assert d._cascade is None
    d.detect(drawn_face(120))
    first = d._cascade
    d.detect(drawn_face(120))
    assert d._cascade is first is not None
    assert FaceDetector()._cascade is None
