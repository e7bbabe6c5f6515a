"""Typed errors whose message is one sentence a user can act on.

Every error the package raises on bad input derives from ``UniformerLabError`` so that the CLI
and the app can print ``str(err)`` instead of a traceback.
"""


class UniformerLabError(Exception):
    """Base class: ``str(err)`` is a complete, user-facing sentence."""


class VideoError(UniformerLabError):
    """The video cannot be read: missing, empty, corrupt, not a video, no video stream."""


class ModelConfigError(UniformerLabError, ValueError):
    """Constructor arguments that do not describe a buildable model (e.g. a bad stage layout)."""


class CheckpointError(UniformerLabError):
    """A checkpoint file cannot be read, is unsafe, or does not fit the chosen model."""


class UnknownModelError(UniformerLabError):
    """A model name that is not registered."""


class WeightsUnavailableError(UniformerLabError):
    """Pretrained weights are neither on disk nor downloadable (e.g. offline)."""


class ConfigError(UniformerLabError):
    """A training configuration that cannot be used (unknown key, wrong type, impossible combination)."""


class RequestCancelled(UniformerLabError):
    """The work was stopped because whoever asked for it went away or cancelled it."""
