"""maskgen: turn face-image datasets into masked-face datasets for facial-expression research.

    import maskgen as mg
    img = mg.read_image("face.jpg")                 # uint8 (H,W) or (H,W,3) RGB
    faces = mg.detect(img)                          # Faces: xyxy, score, landmarks (N,68,2), landmark_source
    res = mg.mask(img, strategy="overlay", type="kn95", faces=faces.largest(), seed=3)
    res.image, res.occlusion, res.params            # same size/mode as img; 0/255 map; replayable params
    mg.write_image("out.jpg", res.image)            # atomic

`mg.load_hf(DST)` gives a `maskgen convert` output as a Hugging Face DatasetDict (ClassLabel, splits).

For training loops: maskgen.transforms.MaskFaces (DataLoaders), HFMask (Hugging Face datasets) and
mg.precompute_faces (detect once, mask every epoch).

Registries: mg.DETECTORS, mg.STRATEGIES, mg.MASK_TYPES (`.names()`); `maskgen list` on the CLI.
"""

from .detectors import DETECTORS, detect
from .errors import MaskgenError
from .facecache import FaceCache, precompute_faces
from .io import read_image, write_image
from .pipeline.hf import load_hf
from .strategies import STRATEGIES, mask
from .templates import MASK_TYPES
from .types import Faces, MaskResult

__version__ = "0.2.0"
__all__ = [
    "DETECTORS",
    "FaceCache",
    "MASK_TYPES",
    "STRATEGIES",
    "Faces",
    "MaskResult",
    "MaskgenError",
    "detect",
    "load_hf",
    "mask",
    "precompute_faces",
    "read_image",
    "write_image",
]
