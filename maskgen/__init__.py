"""maskgen: turn face-image datasets into masked-face datasets for facial-expression research."""

from .detectors import DETECTORS, detect
from .errors import MaskgenError
from .io import read_image, write_image
from .types import Faces, MaskResult

__version__ = "0.1.0"
__all__ = [
    "DETECTORS",
    "Faces",
    "MaskResult",
    "MaskgenError",
    "detect",
    "read_image",
    "write_image",
]
