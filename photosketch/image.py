"""The one place where images become tensors and back.

Convention used everywhere else in photosketch: image tensors are float32, NCHW, in [-1, 1]
(the range a tanh generator outputs), RGB for 3 channels, luminance for 1 channel.

``load_image`` accepts whatever a user hands us (a path, bytes, a PIL image of any mode, a numpy
array of any dtype) and returns a plain 8-bit RGB or L PIL image with EXIF orientation applied,
transparency flattened on white (a sketch on a transparent canvas is black lines on white, not on
black), and 16-bit / CMYK / palette data converted.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

__all__ = [
    "ImageInput",
    "ImageLoadError",
    "load_image",
    "pil_to_tensor",
    "resize_tensor",
    "tensor_to_pil",
    "uint8_to_tensor",
    "to_mode",
]

#: Refuse inputs above this many pixels before decoding them (a decompression bomb guard that
#: raises a clear error instead of PIL's warning or an out-of-memory kill).
MAX_PIXELS = 80_000_000


class ImageLoadError(ValueError):
    """The input is not an image we can read (corrupt, truncated, empty, unsupported)."""


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Composite any transparency onto white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img


def _from_array(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageLoadError(f"expected an HxW, HxWx3 or HxWx4 array; got shape {arr.shape}")
    if arr.size == 0:
        raise ImageLoadError("empty image array")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = (arr / 257.0).round().astype(np.uint8)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        # Floats are taken as [0, 1], or as [0, 255] when they go above 2 (e.g. uint8 pixels cast to
        # float: scaling those as [0, 1] would give a blank white image); values outside are clipped.
        arr = np.nan_to_num(arr.astype(np.float64))
        hi = float(arr.max())
        if hi > 255.5:
            raise ImageLoadError(f"float image values go up to {hi:g}; expected [0, 1] or [0, 255]")
        scale = 1.0 if hi > 2.0 else 255.0
        arr = (np.clip(arr * scale, 0.0, 255.0)).round().astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    else:
        raise ImageLoadError(f"unsupported array dtype {arr.dtype}")
    mode = "L" if arr.ndim == 2 else ("RGB" if arr.shape[-1] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode)


def _normalise_mode(img: Image.Image) -> Image.Image:
    img = _flatten_alpha(img)
    if img.mode in ("RGB", "L"):
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit int) grayscale: rescale the full range to 8 bits instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray((np.clip(arr / top, 0, 1) * 255).round().astype(np.uint8), mode="L")
    if img.mode == "F":
        return _from_array(np.asarray(img, dtype=np.float32) / max(float(np.asarray(img).max()), 1.0))
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"):
        return img.convert("RGB")
    return img.convert("RGB")


def load_image(image: ImageInput) -> Image.Image:
    """Read any supported input into an 8-bit ``RGB`` or ``L`` PIL image.

    Raises:
        ImageLoadError: for missing, corrupt, truncated or non-image inputs, with a message fit
            to show a user.
    """
    if isinstance(image, Image.Image):
        img = image
    elif isinstance(image, np.ndarray):
        return _from_array(image)
    elif isinstance(image, (bytes, bytearray)):
        img = _open(io.BytesIO(image), "the given bytes")
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ImageLoadError(f"{path}: no such file")
        img = _open(path, str(path))
    else:
        raise ImageLoadError(f"cannot read an image from {type(image).__name__}")
    name = getattr(img, "filename", "") or "image"
    if img.width < 1 or img.height < 1:
        raise ImageLoadError(f"{name}: image is empty")
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # animated GIF/WebP/TIFF: use the first frame
        img = ImageOps.exif_transpose(img)  # phone photos store rotation in EXIF
        img.load()
        return _normalise_mode(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{name}: cannot decode image ({exc})") from None


def _open(fp, name: str) -> Image.Image:
    try:
        img = Image.open(fp)
        if img.width * img.height > MAX_PIXELS:
            raise ImageLoadError(f"{name}: image is {img.width}x{img.height}, above the {MAX_PIXELS // 1_000_000} MP limit")
        img.load()  # decode now so a truncated file fails here, not later
        return img
    except ImageLoadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"{name}: not a readable image ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{name}: corrupt or truncated image ({exc})") from None


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """``RGB`` for 3 channels, ``L`` for 1."""
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise ValueError(f"channels must be 1 or 3; got {channels}")
    return img if img.mode == mode else img.convert(mode)


def uint8_to_tensor(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (any shape, any device) -> float32 in [-1, 1]."""
    return pixels.float().div_(127.5).sub_(1.0)


def pil_to_tensor(img: Image.Image, channels: int = 3) -> torch.Tensor:
    """PIL image -> float tensor (C, H, W) in [-1, 1]."""
    arr = np.array(to_mode(img, channels))  # a writable copy: torch warns about read-only buffers
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return uint8_to_tensor(torch.from_numpy(np.ascontiguousarray(arr)))


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Tensor (C, H, W) or (1, C, H, W) in [-1, 1] -> 8-bit PIL image (``L`` or ``RGB``)."""
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    t = tensor.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    arr = t.numpy()
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0], mode="L")
    return Image.fromarray(arr.transpose(1, 2, 0), mode="RGB")


def resize_tensor(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an NCHW batch to ``(height, width)``; antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
