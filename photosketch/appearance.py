"""Another face for the same drawing: a seeded appearance (skin tone, hair colour) for sketch→photo.

A sketch fixes a face's geometry but not its colouring: the same drawing fits people of any skin tone
and hair colour. The sketch→photo generators are deterministic (pix2pix, Isola et al. 2017, sec. 3.1:
the noise input was ignored by the generator, so it was dropped), so "another face" is a recolouring
of the generated photo, steered by a seed:

1. The seed picks a skin tone from the Monk Skin Tone Scale (Monk 2019; Google, CC BY 4.0: ten
   swatches spanning light to deep skin) and a hair colour from :data:`HAIR_COLOURS`.
2. In CIELAB, skin is the face's outline (:data:`FACE`, an ellipse where aligned faces sit), plus the
   neck and shoulders below it (:data:`BODY`) where they have the face's skin colour, minus what is
   much darker than its median (brows, eyes, drawn lines) and minus white page; hair is what is that
   much darker inside the head's outline (:data:`HEAD`) but outside the face. Each moves toward its
   target, in proportion to a soft mask, keeping its shading (lightness is scaled, not replaced) so
   the painted light and shadow stay. Skin lightness is scaled less than the swatches differ, and its
   hue lies between the swatch's and the painted skin's: a photographed face has sheen and warmth
   that a flat swatch lacks, so the deepest tones give a shaded brown face, not a near-black or olive one.

Only colour changes: the person's features come from the drawing. ``seed=None`` returns the model's
own colouring unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

#: The Monk Skin Tone Scale's ten swatches (MST 01 ... MST 10), sRGB.
MONK_SKIN_TONES = ("#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96",
                   "#a07e56", "#825c43", "#604134", "#3a312a", "#292420")
#: Hair colours a seed picks from (sRGB of a mid-tone strand; ours): black, dark brown, brown, auburn,
#: dark blond, blond, grey.
HAIR_COLOURS = ("#1c1a18", "#3b2a20", "#5e4230", "#6e3524", "#8c7050", "#b89c70", "#9a9894")


@dataclass(frozen=True)
class Appearance:
    """What a seed picks: a skin tone and a hair colour (sRGB hex)."""

    skin: str
    hair: str

    @classmethod
    def from_seed(cls, seed: int) -> Appearance:
        """The appearance for ``seed`` (any int; the same seed always gives the same appearance)."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None; got {type(seed).__name__}")
        rng = np.random.default_rng(int(seed) & 0xFFFFFFFF)
        return cls(MONK_SKIN_TONES[int(rng.integers(len(MONK_SKIN_TONES)))], HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))])


def _lab(hex_colour: str) -> np.ndarray:
    rgb = np.array([[[int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]]], np.float32) / 255.0
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[0, 0]


#: Where a face and a head (with hair) sit in a sketch→photo frame, as (centre x, centre y, half width,
#: half height) in fractions of the image: the training pairs' framing (CUFS-like, face centred). Colour
#: alone cannot tell skin from a skin-coloured background the generator painted, nor hair from a dark coat.
FACE = (0.5, 0.52, 0.27, 0.34)
HEAD = (0.5, 0.40, 0.40, 0.42)
#: Below the face: neck and shoulders. Skin there only where the colour matches the face's skin (a
#: collar or a coat is not skin), so a recoloured face does not sit on a neck of the old colour.
BODY = (0.5, 0.94, 0.46, 0.26)


def _ellipse(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """1 inside the ellipse, falling smoothly to 0 just outside it (a flat-topped super-Gaussian)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((x / w - cx) / rx) ** 2 + ((y / h - cy) / ry) ** 2
    return np.exp(-(r2 ** 2) * 0.7)


def _soft(x: np.ndarray, width: float) -> np.ndarray:
    """A smooth step from 0 (x << 0) to 1 (x >> 0)."""
    return 1.0 / (1.0 + np.exp(-x / width))


# Swatches are lit patches of skin; a face in a photo is shaded, so its median lightness sits lower.
# Lightness is mapped relative to the scale's middle swatch (MST 05) rather than copied.
_MID_SKIN_L = float(_lab(MONK_SKIN_TONES[4])[0])


def recolor(photo: Image.Image, appearance: Appearance) -> Image.Image:
    """``photo`` (a generated face, RGB) with its skin and hair moved toward ``appearance``."""
    rgb = np.asarray(photo.convert("RGB"), np.float32) / 255.0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    h, w = lab.shape[:2]
    L, ab = lab[..., 0], lab[..., 1:]
    # The face's centre (the sketch→photo inputs are framed like the training faces) gives the skin colour.
    centre = lab[int(h * 0.35):int(h * 0.7), int(w * 0.3):int(w * 0.7)].reshape(-1, 3)
    centre = centre[(centre[:, 0] > 25) & (centre[:, 0] < 95)]  # not eyes and nostrils, not specular white
    if len(centre) < 16:
        return photo.convert("RGB")
    skin_lab = np.median(centre, axis=0)
    face, head = _ellipse(h, w, *FACE), _ellipse(h, w, *HEAD)
    chroma = np.linalg.norm(ab, axis=-1)
    # Skin: inside the face's outline, neither much darker than the skin (hair, brows, pupils) nor a
    # colourless white page. No chroma test: highlights on the forehead and nose differ in chroma
    # from the median and must move with the rest of the face.
    not_dark = _soft(L - (skin_lab[0] - 28.0), 4.0)
    not_page = 1.0 - _soft(L - 92.0, 1.5) * _soft(6.0 - chroma, 1.5)
    # Neck and shoulders: where the colour is the face's skin colour (within ~12 units of a*b*).
    like_skin = _soft(12.0 - np.linalg.norm(ab - skin_lab[1:], axis=-1), 2.0)
    body = _ellipse(h, w, *BODY) * like_skin * (1.0 - face)
    skin = np.maximum(face, body) * not_dark * not_page
    # Hair: much darker than the skin, inside the head's outline but outside the face, so the brows,
    # eyes and mouth keep their own dark.
    hair = _soft((skin_lab[0] - 22.0) - L, 4.0) * head * (1.0 - face)
    skin = cv2.GaussianBlur(skin.astype(np.float32), (0, 0), max(1.0, w / 64))
    hair = cv2.GaussianBlur(hair.astype(np.float32), (0, 0), max(1.0, w / 128))

    target_skin, target_hair = _lab(appearance.skin), _lab(appearance.hair)
    # A swatch's chroma is that of a flat, evenly lit patch; the darkest swatches are nearly grey and
    # yellowish, which on a shaded face reads as olive mud. Take a hue halfway between the swatch's and
    # the painted skin's (warm), with at least 60% of the painted skin's chroma.
    skin_chroma = float(np.linalg.norm(target_skin[1:]))
    painted_chroma = float(np.linalg.norm(skin_lab[1:]))
    direction = target_skin[1:] / max(skin_chroma, 1e-6) + skin_lab[1:] / max(painted_chroma, 1e-6)
    want = max(skin_chroma, 0.6 * painted_chroma)
    target_skin[1:] = direction / max(float(np.linalg.norm(direction)), 1e-6) * want
    # Lightness is scaled, compressed toward the middle swatch: a photographed face carries sheen and
    # highlights, so even the deepest swatch (L* 15) should not turn a face near-black.
    skin_scale = np.clip(0.2 + 0.8 * target_skin[0] / _MID_SKIN_L, 0.3, 1.2)
    hair_lab = lab[hair > 0.5]
    hair_median = np.median(hair_lab, axis=0) if len(hair_lab) >= 16 else target_hair
    # Lightening dark hair a lot also lifts its noise: at most 2.5x.
    hair_scale = np.clip((target_hair[0] + 4.0) / max(hair_median[0], 4.0), 0.3, 2.5)

    out = lab.copy()
    for mask, scale, source, target in ((skin, skin_scale, skin_lab, target_skin), (hair, hair_scale, hair_median, target_hair)):
        m = mask[..., None]
        shaded = np.concatenate([np.clip(L * scale, 0, 100)[..., None], ab - source[1:] + target[1:]], axis=-1)
        out = out * (1 - m) + shaded * m
    out[..., 0] = np.clip(out[..., 0], 0, 100)
    result = np.clip(cv2.cvtColor(out.astype(np.float32), cv2.COLOR_Lab2RGB), 0, 1)
    return Image.fromarray((result * 255 + 0.5).astype(np.uint8))
