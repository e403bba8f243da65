"""photosketch: face photo -> pencil sketch and sketch -> face photo."""

from .image import ImageLoadError, load_image, pil_to_tensor, tensor_to_pil
from .models import (
    GENERATORS,
    CompactGenerator,
    PatchDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    build_generator,
    load_generator,
)

__version__ = "0.1.0"
