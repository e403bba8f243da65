"""Face detection and head-and-shoulders cropping with OpenCV's bundled Haar cascade.

The learned models were trained on aligned crops (CUFS, FS2K) where the face fills roughly
50-60 % of the width with hair and chin inside the frame. A holiday photo with a small face in
it works much better once cropped to a similar framing, which is what :func:`crop_face` does.

The Viola-Jones detector (``haarcascade_frontalface_default.xml``, shipped inside
``opencv-python-headless``) needs no download and runs in milliseconds on a downscaled copy.
It finds frontal faces only; when it finds none, callers fall back to the whole image.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from .image import ImageInput, load_image

__all__ = ["Box", "FaceDetector", "crop_box", "crop_face", "detect_faces"]

logger = logging.getLogger(__name__)

#: (x, y, width, height) in pixels of the original image.
Box = tuple[int, int, int, int]

CASCADE_FILE = "haarcascade_frontalface_default.xml"


class FaceDetector:
    """A Haar cascade, loaded on first use and kept on this object (not in a module global).

    Args:
        max_side: detection runs on a copy whose longer side is at most this many pixels
            (a 4000x3000 photo is searched at 640x480: ~40x fewer pixels, same faces).
        scale_factor / min_neighbors: ``detectMultiScale`` settings (OpenCV's defaults, with
            5 neighbours to reject the odd false positive in textures).
        min_face: the smallest face, as a fraction of the detection copy's shorter side.
    """

    def __init__(self, max_side: int = 640, scale_factor: float = 1.1, min_neighbors: int = 5, min_face: float = 0.06):
        self.max_side = int(max_side)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_face = float(min_face)
        self._cascade = None

    @property
    def cascade(self):
        if self._cascade is None:
            import cv2

            path = cv2.data.haarcascades + CASCADE_FILE
            cascade = cv2.CascadeClassifier(path)
            if cascade.empty():
                raise RuntimeError(f"OpenCV could not load its face cascade {path}")
            self._cascade = cascade
        return self._cascade

    def detect(self, image: ImageInput) -> list[Box]:
        """Faces in ``image``, largest first, as (x, y, w, h) in the image's own pixels."""
        import cv2

        img = load_image(image)
        scale = min(1.0, self.max_side / max(img.size))
        small = img.convert("L")
        if scale < 1.0:
            small = small.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
        gray = cv2.equalizeHist(np.asarray(small))  # evens out exposure, as the OpenCV face tutorial does
        side = max(20, int(self.min_face * min(gray.shape)))
        if min(gray.shape) < side:
            return []
        found = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(side, side))
        boxes = []
        for x, y, w, h in np.asarray(found, dtype=np.int64).reshape(-1, 4):
            bx, by = round(x / scale), round(y / scale)
            bw, bh = round(w / scale), round(h / scale)
            boxes.append((int(bx), int(by), int(min(bw, img.width - bx)), int(min(bh, img.height - by))))
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return boxes

    def crop(self, image: ImageInput, margin: float = 0.4, aspect: float = 1.25) -> tuple[Image.Image, Box | None]:
        """See :func:`crop_face`."""
        img = load_image(image)
        boxes = self.detect(img)
        if not boxes:
            logger.info("no face found; using the whole image")
            return img, None
        return crop_around(img, boxes[0], margin=margin, aspect=aspect)


def crop_around(img: Image.Image, face: Box, margin: float = 0.4, aspect: float = 1.25) -> tuple[Image.Image, Box]:
    """``img`` cropped to :func:`crop_box` of the ``face`` box -> (crop, its (x, y, w, h))."""
    box = crop_box(tuple(int(round(v)) for v in face), img.size, margin=margin, aspect=aspect)
    x, y, w, h = box
    return img.crop((x, y, x + w, y + h)), box


def crop_box(face: Box, image_size: tuple[int, int], margin: float = 0.4, aspect: float = 1.25) -> Box:
    """Grow a detected face box into a head-and-shoulders crop, clamped to the image.

    The crop is ``(1 + 2 * margin)`` face-widths wide (margin 0.4: the face is ~55 % of the
    width, like the CUFS / FS2K crops) and ``aspect`` times as tall as wide (1.25 = CUFS's
    200 x 250). Its centre sits a tenth of the face height above the face box's centre, because
    the Haar box runs from the brows to the chin and the crop should include the hair. A crop
    that would leave the image is shifted back inside, then cut to the image if still too big
    (each side on its own: the full height with hair and chin matters more than the aspect).
    """
    fx, fy, fw, fh = face
    iw, ih = image_size
    w = fw * (1 + 2 * margin)
    h = w * aspect
    cx, cy = fx + fw / 2, fy + fh / 2 - 0.1 * fh
    w, h = min(w, iw), min(h, ih)
    x = min(max(cx - w / 2, 0.0), iw - w)
    y = min(max(cy - h / 2, 0.0), ih - h)
    x0, y0 = int(round(x)), int(round(y))
    return x0, y0, max(1, min(int(round(w)), iw - x0)), max(1, min(int(round(h)), ih - y0))


def detect_faces(img: ImageInput, detector: FaceDetector | None = None) -> list[Box]:
    """Frontal faces in ``img`` as (x, y, w, h) boxes, largest first (empty when none)."""
    return (detector or FaceDetector()).detect(img)


def crop_face(
    img: ImageInput, margin: float = 0.4, aspect: float = 1.25, detector: FaceDetector | None = None
) -> tuple[Image.Image, Box | None]:
    """Crop the largest face with hair and chin, like the training data's framing.

    Returns ``(crop, (x, y, w, h))``, or ``(img, None)`` when no face is found (``img`` loaded
    through :func:`photosketch.image.load_image`).
    """
    return (detector or FaceDetector()).crop(img, margin=margin, aspect=aspect)
