"""JSON that strict parsers accept: no ``NaN`` / ``Infinity`` tokens, ever.

Why: ``json.dumps`` writes ``NaN`` and ``Infinity`` by default, which are not JSON (``jq``,
JavaScript's ``JSON.parse`` and most typed clients refuse the whole document). A non-finite
number can still come out of a model (a float16 overflow, an empty mean), so every place that
writes JSON for a user (the CLIs' ``--json``, the app's API results) passes through
:func:`finite`, which turns such numbers into ``null``, and writes with ``allow_nan=False`` so a
missed case fails loudly instead of producing invalid JSON.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps", "finite"]


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (also numpy / torch scalars) replaced by ``None``.

    Containers are rebuilt (dicts, lists, tuples → lists); other values are returned unchanged.
    """
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(obj, "ndim", 1) == 0:
        return finite(item())
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)`` with ``allow_nan=False``."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
