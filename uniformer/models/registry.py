"""timm registration helpers shared by the model files (``uniformer.py``, ``timesformer.py``).

Each model file registers its released checkpoints the way timm's own model files do:
``default_cfgs = generate_default_cfgs({...})`` holds where the weights are and what one view
looks like, and one ``@register_model`` function per name calls :func:`build_video_model`, which is
``timm.models.build_model_with_cfg`` plus two rules that make every weight source strict:

- files, URLs and hub copies are read by the model's own ``load_pretrained`` (timm's
  ``custom_load`` hook): the safe reader of ``uniformer.models.checkpoint``, then a strict load
  through the family's ``checkpoint_filter_fn``. A user's ``pretrained_cfg_overlay=dict(file=...)``
  keeps that hook (timm would otherwise reset ``custom_load`` and use its own reader);
- an in-memory ``state_dict`` source goes through :func:`strict_filter`, so a checkpoint of the
  wrong size or family is refused with one sentence instead of half-loaded.

Test protocols, label lists and published numbers are not here: they live in ``uniformer.zoo``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from timm.models import build_model_with_cfg
from torch import nn

from uniformer.models.checkpoint import apply_filter, match_state_dict, unwrap_state_dict

__all__ = ["MEAN", "STD", "build_video_model", "strict_filter", "video_cfg"]

ModelT = TypeVar("ModelT", bound=nn.Module)
FilterFn = Callable[..., Mapping[str, Any]]

MEAN = (0.45, 0.45, 0.45)  # SlowFast / TimeSformer defaults, used to train and test every checkpoint
STD = (0.225, 0.225, 0.225)


def video_cfg(*, num_classes: int, img_size: int = 224, first_conv: str, **kwargs: Any) -> dict[str, Any]:
    """A timm pretrained cfg for one video checkpoint. timm's builder asserts a 3-tuple
    ``input_size``, so it is the per-frame ``(C, H, W)``; frames per clip are in the zoo entry."""
    return {
        "num_classes": num_classes, "input_size": (3, img_size, img_size), "interpolation": "bilinear",
        "crop_pct": 1.0, "crop_mode": "center", "mean": MEAN, "std": STD, "first_conv": first_conv,
        "classifier": "head", "custom_load": "hf", **kwargs,
    }


def strict_filter(filter_fn: FilterFn | None) -> Callable[[Any, nn.Module], Mapping[str, Any]]:
    """timm ``pretrained_filter_fn`` for in-memory sources: unwrap, convert, check every key and shape.

    The head is left out of the check only when the model was built with a class count other
    than its pretrained cfg's (timm's convention; timm then drops the head itself).
    """

    def fn(state_dict: Any, model: nn.Module) -> Mapping[str, Any]:
        sd = apply_filter(unwrap_state_dict(state_dict), model, filter_fn)
        n_cfg = (getattr(model, "pretrained_cfg", None) or {}).get("num_classes")
        ignore_head = n_cfg is not None and getattr(model, "num_classes", n_cfg) != n_cfg
        return match_state_dict(model, sd, ignore_head=ignore_head)

    return fn


def build_video_model(model_cls: type[ModelT], variant: str, pretrained: bool, filter_fn: FilterFn,
                      arch: Mapping[str, Any], **kwargs: Any) -> ModelT:
    """``build_model_with_cfg`` for one registered name: ``arch`` are the name's constructor
    arguments, ``kwargs`` the caller's (they win, e.g. ``depth=`` for a tiny test model)."""
    overlay = kwargs.get("pretrained_cfg_overlay")
    if overlay:  # keep the safe, strict reader for a user-supplied file / url / hub copy
        kwargs["pretrained_cfg_overlay"] = {"custom_load": "hf", **overlay}
    return build_model_with_cfg(model_cls, variant, pretrained, pretrained_filter_fn=strict_filter(filter_fn),
                                **{**arch, **kwargs})
