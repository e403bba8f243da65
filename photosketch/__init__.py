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

from .classical import STYLES, line_drawing
from .hub import MODELS, ModelNotAvailableError, load_model
from .pipeline import PhotoSketchPipeline

__version__ = "0.1.0"
