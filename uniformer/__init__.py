"""UniFormer Lab core: models, video input, checkpoints, inference and training.

Importing the package itself is light (``torch``-free): the subpackages load when first used, so
``python -m uniformer.predict --help`` does not pay for timm. The released UniFormer and TimeSformer
checkpoints are registered in timm's registry by ``import uniformer.models`` (the ``@register_model``
functions in ``uniformer/models/uniformer.py`` and ``timesformer.py``), which the zoo and every model
builder import; ``uniformer.models`` as an attribute of this package also imports it.
"""
from __future__ import annotations

import importlib
from types import ModuleType

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


def __getattr__(name: str) -> ModuleType:
    """``uniformer.zoo`` / ``uniformer.models`` / … after a bare ``import uniformer``: imported on first use."""
    if name.startswith("_"):
        raise AttributeError(f"module 'uniformer' has no attribute {name!r}")
    try:
        return importlib.import_module(f"uniformer.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"uniformer.{name}":
            raise
        raise AttributeError(f"module 'uniformer' has no attribute {name!r}") from None
