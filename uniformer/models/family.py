"""The model families, described once: what the zoo, the trainer, the analysis and the app need
to know about an architecture, so none of them tests family names or classes on its own.

A :class:`ModelFamily` says how to build the model (``model_cls``), how to read its checkpoints
(``checkpoint_filter_fn``), where its stem conv is (timm's ``first_conv``, also where 2D->3D
inflation starts) and the properties the analysis and reports branch on (local blocks, a cls
token, divided attention, the FLOPs convention of its papers). :func:`get_family` finds the family
of a name, a zoo entry, an attention record, a model class or a model instance.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

import uniformer.models.timesformer as _timesformer
import uniformer.models.uniformer as _uniformer
from uniformer.errors import UnknownModelError

__all__ = ["FAMILIES", "TIMESFORMER", "UNIFORMER", "ModelFamily", "family_names", "get_family"]


@dataclass(frozen=True)
class ModelFamily:
    """One architecture family. ``name`` is the identifier used in zoo entries and configs."""

    name: str
    title: str  # for people: "UniFormer"
    model_cls: type[nn.Module]
    checkpoint_filter_fn: Callable[..., Mapping[str, Any]]
    first_conv: str  # qualified name of the stem conv (timm's first_conv)
    has_local_blocks: bool  # learned local affinities (UniFormer stages 1-2), shown as kernels
    has_cls_token: bool  # a cls token in the token sequence (attention maps carry it)
    attribution: str  # the saliency the analysis offers: "cam" (last-stage CAM) or "rollout"
    flops_include_norms: bool  # the published GFLOPs convention (fvcore totals count norms)
    classifier: str = "head"

    def build(self, **kwargs: Any) -> nn.Module:
        """A randomly initialised model, e.g. ``build(num_classes=12, depth=[1, 1, 2, 1])``."""
        return self.model_cls(**kwargs)


UNIFORMER = ModelFamily(
    name="uniformer", title="UniFormer", model_cls=_uniformer.UniFormer,
    checkpoint_filter_fn=_uniformer.checkpoint_filter_fn, first_conv=_uniformer.FIRST_CONV,
    has_local_blocks=True, has_cls_token=False, attribution="cam", flops_include_norms=True,
)
TIMESFORMER = ModelFamily(
    name="timesformer", title="TimeSformer", model_cls=_timesformer.TimeSformer,
    checkpoint_filter_fn=_timesformer.checkpoint_filter_fn, first_conv=_timesformer.FIRST_CONV,
    has_local_blocks=False, has_cls_token=True, attribution="rollout", flops_include_norms=False,
)
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (UNIFORMER, TIMESFORMER)}


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)


def _of_class(cls: type) -> ModelFamily | None:
    return next((f for f in FAMILIES.values() if issubclass(cls, f.model_cls)), None)


def get_family(obj: str | ModelFamily | nn.Module | type | Any) -> ModelFamily:
    """The family of ``obj``: a family name (``'uniformer'``), a :class:`ModelFamily`, a model
    class or instance, or anything with a ``family`` (zoo entry) or ``model`` (attention record)
    attribute naming one. Raises :class:`UnknownModelError` in one sentence otherwise."""
    if isinstance(obj, ModelFamily):
        return obj
    if isinstance(obj, str):
        family = FAMILIES.get(obj.lower())
        if family is None:
            raise UnknownModelError(f"Unknown model family '{obj}'; choose one of {', '.join(FAMILIES)}.")
        return family
    if isinstance(obj, (type, nn.Module)):
        family = _of_class(obj if isinstance(obj, type) else type(obj))
        inner = getattr(obj, "_orig_mod", None) or getattr(obj, "zoo_entry", None)  # torch.compile / zoo model
        if family is None and inner is not None and not isinstance(obj, type):
            return get_family(inner)
        if family is None:
            name = obj.__name__ if isinstance(obj, type) else type(obj).__name__
            titles = " and ".join(f.title for f in FAMILIES.values())
            raise UnknownModelError(f"{name} is not a model of a known family ({titles}).")
        return family
    for attr in ("family", "model"):
        value = getattr(obj, attr, None)
        if isinstance(value, str):
            return get_family(value)
    raise UnknownModelError(f"Cannot tell the model family of a {type(obj).__name__}.")
