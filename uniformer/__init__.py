"""UniFormer Lab core: models, video input, checkpoints, inference and training.

Importing the package registers the released UniFormer and TimeSformer checkpoints in timm's registry
(``@register_model`` functions in ``uniformer/models/uniformer.py`` and ``timesformer.py``).
"""
import uniformer.models  # noqa: F401  (registers the model files' timm constructors)
from uniformer.errors import (
    CheckpointError,
    UniformerLabError,
    UnknownModelError,
    VideoError,
    WeightsUnavailableError,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "UniformerLabError",
    "UnknownModelError",
    "VideoError",
    "WeightsUnavailableError",
    "__version__",
]
