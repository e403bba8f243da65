"""photosketch.appearance: "another face" for the same drawing, a seeded skin tone and hair colour."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from photosketch.appearance import HAIR_COLOURS, MONK_SKIN_TONES, Appearance, recolor


def generated_face(size=96, skin=(200, 150, 120), hair=(40, 30, 25)):
    """A stand-in for a sketch→photo output: grey page, a skin-coloured face, a dark hair cap."""
    img = Image.new("RGB", (size, size), (200, 200, 200))
    d = ImageDraw.Draw(img)
    d.ellipse((size * 0.22, size * 0.12, size * 0.78, size * 0.6), fill=hair)  # hair above and around
    d.ellipse((size * 0.28, size * 0.25, size * 0.72, size * 0.85), fill=skin)  # the face
    return img


def lightness(img, box):
    return float(np.asarray(img.convert("L").crop(box), np.float32).mean())


def test_a_seed_always_picks_the_same_appearance_and_seeds_differ():
    assert Appearance.from_seed(7) == Appearance.from_seed(7)
    picked = {Appearance.from_seed(s) for s in range(20)}
    assert len({a.skin for a in picked}) >= 4 and len({a.hair for a in picked}) >= 3
    assert all(a.skin in MONK_SKIN_TONES and a.hair in HAIR_COLOURS for a in picked)
    with pytest.raises(TypeError, match="seed"):
        Appearance.from_seed("3")


def test_recolor_moves_skin_and_hair_and_leaves_the_page():
    face = generated_face()
    cheek, page, crown = (40, 55, 56, 70), (0, 88, 10, 96), (40, 14, 56, 20)
    deep = recolor(face, Appearance(skin=MONK_SKIN_TONES[8], hair=HAIR_COLOURS[0]))
    light = recolor(face, Appearance(skin=MONK_SKIN_TONES[1], hair=HAIR_COLOURS[5]))
    assert lightness(deep, cheek) < lightness(face, cheek) - 25  # deep skin is darker
    assert lightness(light, cheek) > lightness(deep, cheek) + 40
    assert lightness(light, crown) > lightness(face, crown) + 15  # blond hair is lighter than black
    assert lightness(light, crown) > lightness(deep, crown) + 15
    for out in (deep, light):
        assert out.size == face.size and out.mode == "RGB"
        assert abs(lightness(out, page) - lightness(face, page)) < 1  # the background is not a face
    # Shading survives: a shadow on the cheek stays darker than the lit cheek.
    shaded = face.copy()
    ImageDraw.Draw(shaded).rectangle((30, 60, 40, 75), fill=(150, 110, 90))
    out = np.asarray(recolor(shaded, Appearance(MONK_SKIN_TONES[5], HAIR_COLOURS[1])).convert("L"), np.float32)
    assert out[65:72, 32:38].mean() < out[65:72, 50:56].mean() - 5


def portrait(skin=(200, 150, 120)):
    """A taller frame, as the app's drawings: face, neck and bare shoulders in skin, a blue coat at the side."""
    img = Image.new("RGB", (96, 128), (200, 200, 200))
    d = ImageDraw.Draw(img)
    d.ellipse((27, 20, 69, 82), fill=skin)
    d.rectangle((40, 82, 56, 108), fill=skin)
    d.rectangle((24, 108, 72, 127), fill=skin)
    d.rectangle((0, 100, 20, 127), fill=(40, 60, 140))
    return img


def lab_median(img, box):
    lab = cv2.cvtColor(np.asarray(img.crop(box), np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return np.median(lab.reshape(-1, 3), axis=0)


def test_recolor_moves_the_neck_with_the_face_but_not_the_coat():
    face = portrait()
    deep = recolor(face, Appearance(skin=MONK_SKIN_TONES[9], hair=HAIR_COLOURS[0]))
    cheek, shoulder, coat = (40, 50, 56, 65), (28, 116, 40, 126), (2, 110, 16, 126)
    assert lightness(deep, cheek) < lightness(face, cheek) - 25
    assert lightness(deep, shoulder) < lightness(face, shoulder) - 25  # not pale shoulders under a deep-toned face
    assert abs(lightness(deep, coat) - lightness(face, coat)) < 2


def test_the_deepest_skin_tone_is_a_warm_shaded_brown_not_black_or_olive():
    face = portrait(skin=(215, 155, 140))  # a pinkish painted face (Lab hue about 35 degrees)
    L, a, b = lab_median(recolor(face, Appearance(skin=MONK_SKIN_TONES[9], hair=HAIR_COLOURS[0])), (40, 55, 56, 70))
    assert L > 20  # a photographed face keeps its sheen: not the swatch's near-black L* 15
    assert L < lab_median(face, (40, 55, 56, 70))[0] - 30
    hue = np.degrees(np.arctan2(b, a))
    assert 20 < hue < 60 and np.hypot(a, b) > 8  # warm and coloured, not the swatch's yellow-grey (67 degrees)


def test_recolor_leaves_an_image_without_a_face_alone():
    blank = Image.new("RGB", (64, 64), "white")
    assert np.array_equal(np.asarray(recolor(blank, Appearance.from_seed(1))), np.asarray(blank))
