"""UniFormer Lab core: models, video input, checkpoints, inference and training.

Importing the package registers the UniFormer and TimeSformer families in timm's registry.
"""
from uniformer.errors import (
    CheckpointError,
    UniformerLabError,
    UnknownModelError,
    VideoError,
    WeightsUnavailableError,
)
import uniformer.models  # noqa: E402,F401  (registers the zoo's timm constructors)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "UniformerLabError",
    "UnknownModelError",
    "VideoError",
    "WeightsUnavailableError",
    "__version__",
]
