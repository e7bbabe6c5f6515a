"""Reading, unwrapping and strictly validating checkpoints of both model families.

Why a module of its own: released weights come in several containers (plain ``state_dict``,
``{'model': ...}`` image checkpoints, PySlowFast ``.pyth`` training checkpoints with
``model_state`` and a ``model.`` prefix, ``module.`` from DDP, safetensors, Hugging Face ports),
and loading the wrong one must never half-work. Everything here either returns a complete,
shape-checked ``state_dict`` or raises :class:`~uniformer.errors.CheckpointError` with one
sentence that says what is wrong and what to pick instead.

Safety: ``.pth``/``.pyth`` files are pickles. They are first read with
``torch.load(weights_only=True)``; only when that refuses (a training checkpoint that pickled a
config object, e.g. a yacs ``CfgNode``) is a *restricted* unpickler used. It resolves only
torch's tensor/storage rebuild helpers and a few plain containers; every other global becomes an
inert :class:`OpaqueObject` that records its arguments and never calls anything, so a
``__reduce__`` payload such as ``os.system`` or ``builtins.eval`` cannot run.
"""
from __future__ import annotations

import _compat_pickle
import io
import logging
import os
import pickle
import re
import stat
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uniformer.errors import CheckpointError
from uniformer.models.checkpoint_guard import add_note, check_declared, check_tensors, is_legacy_torch, model_budget

__all__ = [
    "CONTAINER_KEYS",
    "EMA_KEYS",
    "OpaqueObject",
    "apply_filter",
    "classifier_prefix",
    "guess_family",
    "head_fits",
    "load_checkpoint",
    "load_pretrained",
    "match_state_dict",
    "read_checkpoint",
    "restricted_torch_load",
    "unwrap_state_dict",
]

_logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

# Containers that hold the weights, in the order they are tried. ``model_state``: PySlowFast
# ``.pyth`` (UniFormer and TimeSformer training checkpoints); ``model``: ImageNet UniFormer and
# timm-style training checkpoints; ``state_dict``: Lightning / generic; ``module``: old DDP dumps.
CONTAINER_KEYS: tuple[str, ...] = ("state_dict", "model_state", "model", "module")
# EMA weights are only taken when asked for (``use_ema=True``): no released UniFormer or
# TimeSformer checkpoint has them, and silently preferring them (timm's default) would make the
# same file give different logits depending on which loader read it.
EMA_KEYS: tuple[str, ...] = ("state_dict_ema", "model_ema", "ema")  # timm, timm, this project's trainer
# Prefixes stripped when *every* key carries them (repeatedly: ``module.model.`` happens).
_STRIP_PREFIXES: tuple[str, ...] = ("module.", "model.", "backbone.")
_MAX_LISTED = 8


# =============================================================================== reading
def read_checkpoint(path: PathLike, *, max_bytes: int | None = None, lazy: bool = False) -> Any:
    """Load a checkpoint file into Python objects (tensors on CPU), safely and bounded.

    ``.safetensors`` (or safetensors content under another name) goes through ``safetensors``;
    zip and legacy torch pickles through ``torch.load(weights_only=True)``, falling back to
    :func:`restricted_torch_load` when that refuses a non-tensor object. Before anything is
    read, what the file declares it will take in memory is compared with ``max_bytes`` (the
    target model's budget, :func:`~uniformer.models.checkpoint_guard.model_budget`; default the
    absolute cap), so a decompression bomb is refused without inflating it. Anything else raises
    :class:`CheckpointError` with one sentence (missing, directory, FIFO or device, empty, a
    video, a text file, a plain pickle, random bytes, a truncated download).

    ``lazy=True`` maps a zip checkpoint's tensors from the file instead of reading them (``mmap``):
    for a caller that wants only the small objects beside the weights (a training checkpoint's
    config), so that a large file is not read once for its config and again for its weights.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"Checkpoint file not found: {p}.")
    if p.is_dir():
        raise CheckpointError(f"Checkpoint path {p} is a directory; pass the weights file inside it.")
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):  # never open a FIFO (blocks) or a device (endless)
            raise CheckpointError(f"Checkpoint path {p} is not a regular file ({_special_kind(st.st_mode)}); "
                                  "pass the weights file itself.")
        size = st.st_size
        with p.open("rb") as f:
            head = f.read(4096)
    except OSError as err:
        raise CheckpointError(f"Checkpoint file {p} cannot be read ({err.strerror or err}).") from err
    if size == 0:
        raise CheckpointError(f"Checkpoint file {p} is empty (0 bytes); the download or save did not finish.")
    check_declared(p, head, size, max_bytes)

    if _looks_like_safetensors(head, size) or p.suffix == ".safetensors":
        return _read_safetensors(p)
    kind = _sniff_foreign(head)
    if kind is not None:
        raise CheckpointError(f"{p} is {kind}, not a model checkpoint (.pth, .pyth, .pt or .safetensors).")
    is_zip = head.startswith(b"PK\x03\x04")
    is_pickle = head[:1] == b"\x80"  # pickle protocol >= 2: torch's legacy (non-zip) format
    if not (is_zip or is_pickle):
        raise CheckpointError(f"{p} is not a PyTorch or safetensors checkpoint (unrecognised content).")
    if is_pickle and not is_legacy_torch(head):
        raise CheckpointError(f"{p} is a plain Python pickle, not a PyTorch checkpoint (torch.save writes a zip "
                              "archive or its legacy format); save the weights with torch.save or as .safetensors.")

    try:
        return torch.load(p, map_location="cpu", weights_only=True, mmap=lazy and is_zip)
    except pickle.UnpicklingError as err:
        first_error: Exception = err
    except RuntimeError as err:
        raise _zip_error(p, err) from err
    except Exception as err:  # EOFError, OSError, AssertionError, AttributeError, struct.error, ...:
        # torch's readers raise whatever a broken byte happens to trip over
        raise CheckpointError(f"Checkpoint file {p} is truncated or corrupt; download or save it again.") from err

    # weights_only refused something: retry with the restricted unpickler (never executes globals).
    try:
        obj, substituted = restricted_torch_load(p)
    except RuntimeError as err:
        raise _zip_error(p, err) from err
    except Exception:  # any other failure means the pickle itself is broken
        raise CheckpointError(
            f"Checkpoint file {p} is not a readable PyTorch checkpoint (truncated, corrupt or not a checkpoint)."
        ) from first_error
    if substituted and not _holds_tensor(obj):
        raise CheckpointError(
            f"{p} is not a weights checkpoint: it holds no tensors, only pickled Python objects "
            f"({', '.join(sorted(substituted)[:3])}), which were not run."
        )
    if substituted:
        _logger.info(
            "Loaded %s with the restricted unpickler; these pickled objects were replaced by inert "
            "placeholders: %s", p, ", ".join(sorted(substituted)),
        )
        shown = sorted(substituted)
        add_note(f"The checkpoint {p.name} also pickled Python objects ({', '.join(shown[:3])}"
                 f"{', …' if len(shown) > 3 else ''}) that were replaced by inert placeholders and never run; "
                 "only its tensors were used.")
    return obj


def _special_kind(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a file"


def _holds_tensor(obj: Any, depth: int = 0) -> bool:
    """Whether a loaded checkpoint object contains at least one tensor (bounded walk)."""
    if isinstance(obj, torch.Tensor):
        return True
    if depth > 6:
        return False
    if isinstance(obj, dict):
        return any(_holds_tensor(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_holds_tensor(v, depth + 1) for v in obj)
    return False


def _read_safetensors(p: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as err:  # pragma: no cover - safetensors is a hard dependency
        raise CheckpointError(
            "Reading .safetensors files needs the 'safetensors' package (pip install safetensors).") from err
    try:
        return load_file(str(p), device="cpu")
    except Exception as err:  # SafetensorError, OSError, ValueError: all mean "bad file"
        raise CheckpointError(f"{p} is not a valid safetensors file (truncated or corrupt).") from err


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """safetensors = 8-byte little-endian header length, then a JSON object."""
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _sniff_foreign(head: bytes) -> str | None:
    """Name common non-checkpoint files so the message says what was passed instead."""
    if head[4:8] == b"ftyp":
        return "a video file (MP4/MOV)"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a video file (MKV/WebM)"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "a video file (AVI)"
    mpeg_ps = head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"))
    if mpeg_ps or (head[:1] == b"\x47" and head[188:189] == b"\x47"):
        return "a video file (MPEG)"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return "an image file"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer (the real file was not downloaded; run `git lfs pull`)"
    if head.lstrip().startswith((b"<!DOCTYPE", b"<html", b"<HTML")):
        return "an HTML page (the download link returned a web page instead of the file)"
    if head and not head.startswith((b"PK", b"\x80")):
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            # a multi-byte character cut at the 4096-byte boundary is still text
            try:
                text = head[:-4].decode("utf-8")
            except UnicodeDecodeError:
                return None
        if all(c.isprintable() or c in "\r\n\t" for c in text):
            return "a text file"
    return None


def _zip_error(p: Path, err: RuntimeError) -> CheckpointError:
    msg = str(err)
    if "central directory" in msg or "corrupt" in msg or "invalid header" in msg or "failed reading" in msg:
        return CheckpointError(f"Checkpoint file {p} is truncated or corrupt (incomplete zip archive); download or "
                               "save it again.")
    if "wrong byte size" in msg:  # a storage that claims more (or less) than the file holds
        return CheckpointError(f"Checkpoint file {p} is corrupt: a tensor declares another size than the data "
                               "stored for it.")
    if "not in a subdirectory" in msg or "data.pkl" in msg:
        return CheckpointError(f"{p} is a zip archive but not a PyTorch checkpoint.")
    return CheckpointError(f"Checkpoint file {p} cannot be loaded by PyTorch ({msg.splitlines()[0][:160]}).")


# ============================================================== restricted unpickling
class OpaqueObject(dict):
    """Inert stand-in for a pickled object whose class is not on the allow-list.

    It is a ``dict`` so that config objects pickled as dict subclasses (yacs ``CfgNode``,
    ``argparse.Namespace``-like dicts) stay readable; constructor arguments, ``__setstate__``
    state and list items are recorded, never interpreted. Calling the *class* is how pickle's
    ``REDUCE``/``NEWOBJ`` would have run the original callable, so that call only records too.
    """

    _opaque_global = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> OpaqueObject:
        # Set up here, not in __init__: pickle's NEWOBJ calls only __new__.
        self = dict.__new__(cls)
        object.__setattr__(self, "opaque_args", args)
        object.__setattr__(self, "opaque_kwargs", kwargs)
        object.__setattr__(self, "opaque_state", None)
        object.__setattr__(self, "opaque_items", [])
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # records (in __new__), never calls
        pass

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "opaque_state", state)

    def __reduce__(self):  # re-pickling yields a plain dict, never the original global
        return (dict, (dict(self),))

    def append(self, item: Any) -> None:
        self.opaque_items.append(item)

    def extend(self, items: Any) -> None:
        self.opaque_items.extend(items)

    def __repr__(self) -> str:
        return f"<opaque {self._opaque_global}>"


_OPAQUE_CLASSES: dict[tuple[str, str], type] = {}


def _opaque_class(module: str, name: str) -> type:
    key = (module, name)
    cls = _OPAQUE_CLASSES.get(key)
    if cls is None:
        safe_name = name if name.isidentifier() else "Opaque"
        cls = type(safe_name, (OpaqueObject,), {"_opaque_global": f"{module}.{name}", "__module__": __name__})
        _OPAQUE_CLASSES[key] = cls
    return cls


_TORCH_REBUILD = frozenset({
    "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
    "_rebuild_parameter_with_state", "_rebuild_sparse_tensor", "_rebuild_qtensor",
    "_rebuild_meta_tensor_no_storage",
})
_PLAIN_GLOBALS = frozenset({
    ("collections", "OrderedDict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"), ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),  # how protocol-2 pickles spell ``bytes``; a pure codec call
    ("torch", "Size"), ("torch", "device"),
})


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only tensor-rebuild helpers, dtypes and plain containers; the rest is opaque.

    torch wraps this class and resolves ``*Storage`` names itself before calling us.
    """

    substituted: set[str]

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401
        # Protocol <= 2 pickles spell Python 3 names the Python 2 way (__builtin__, copy_reg).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _PLAIN_GLOBALS:
            return super().find_class(module, name)
        if module == "torch._utils" and name in _TORCH_REBUILD:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        self.substituted.add(f"{module}.{name}")
        return _opaque_class(module, name)


class _RestrictedPickleModule:
    """A ``pickle_module`` for ``torch.load`` whose every entry point is restricted."""

    __name__ = "uniformer_restricted_pickle"
    UnpicklingError = pickle.UnpicklingError

    def __init__(self) -> None:
        substituted: set[str] = set()
        self.substituted = substituted

        class Unpickler(_RestrictedUnpickler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.substituted = substituted

        self.Unpickler = Unpickler

    def load(self, file: Any, **kwargs: Any) -> Any:
        return self.Unpickler(file, **kwargs).load()

    def loads(self, data: bytes, **kwargs: Any) -> Any:
        return self.Unpickler(io.BytesIO(data), **kwargs).load()


def restricted_torch_load(path: PathLike) -> tuple[Any, set[str]]:
    """``torch.load`` through the restricted unpickler.

    Returns the object and the set of ``module.name`` globals that were replaced by
    :class:`OpaqueObject` placeholders. Tensors load normally.
    """
    module = _RestrictedPickleModule()
    obj = torch.load(Path(path), map_location="cpu", weights_only=False, pickle_module=module)
    return obj, set(module.substituted)


# ============================================================================ unwrapping
def unwrap_state_dict(obj: Any, *, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """Find the weights inside a checkpoint container and normalise their key names.

    Unwraps (up to a few levels) ``state_dict`` / ``model_state`` / ``model`` / ``module``
    containers (``state_dict_ema`` / ``model_ema`` first only when ``use_ema``), then strips a
    ``module.``, ``model.`` or ``backbone.`` prefix when *every* key carries it. The result
    must map strings to tensors; anything else raises :class:`CheckpointError`.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"The checkpoint holds a {type(obj).__name__}, not a state dict (a mapping from parameter names to "
            "tensors)."
        )
    keys_seen = list(obj.keys())[:_MAX_LISTED]
    for _ in range(4):
        if _all_tensors(obj):
            break
        inner = None
        order = (EMA_KEYS + CONTAINER_KEYS) if use_ema else CONTAINER_KEYS
        for key in order:
            value = obj.get(key) if isinstance(obj, Mapping) else None
            if isinstance(value, Mapping) and value:
                inner = value
                break
            if isinstance(value, nn.Module):  # whole pickled model (only via the restricted path: opaque)
                inner = value.state_dict()
                break
        if inner is None:
            break
        obj = inner
    if not obj:
        raise CheckpointError("The checkpoint contains no weights (its state dict is empty).")
    if not _all_tensors(obj):
        bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)][:_MAX_LISTED]
        raise CheckpointError(
            "The checkpoint has no state dict of tensors: looked inside "
            f"{'/'.join(CONTAINER_KEYS)} and found non-tensor entries ({', '.join(bad)}); "
            f"top-level keys were {', '.join(map(str, keys_seen))}."
        )
    sd = OrderedDict((str(k), v) for k, v in obj.items())
    stripped = True
    while stripped:
        stripped = False
        for prefix in _STRIP_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = OrderedDict((k[len(prefix):], v) for k, v in sd.items())
                stripped = True
    return sd


def _all_tensors(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


# ============================================================================== matching
def guess_family(keys: Any) -> str | None:
    """'uniformer', 'timesformer', 'timesformer-hf' (Hugging Face names) or None, from key names.

    BatchNorm counters are ignored: a family filter may have filled them in from the model.
    """
    keys = [k for k in keys if not k.endswith("num_batches_tracked")]
    if any(k.startswith("patch_embed1.") or k.startswith("blocks1.") for k in keys):
        return "uniformer"
    if any(k.startswith(("timesformer.embeddings", "timesformer.encoder")) for k in keys):
        return "timesformer-hf"
    if any(k == "time_embed" or ".temporal_fc." in k or k == "cls_token" for k in keys):
        return "timesformer"
    return None


_FAMILY_TITLE = {"uniformer": "UniFormer", "timesformer": "TimeSformer", "timesformer-hf": "Hugging Face TimeSformer"}


def _model_title(model: nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("architecture") if isinstance(cfg, Mapping) else None
    return f"{type(model).__name__} '{name}'" if name else type(model).__name__


def classifier_prefix(model: nn.Module) -> str | None:
    """Qualified name of the module returned by ``model.get_classifier()`` (timm convention)."""
    get = getattr(model, "get_classifier", None)
    if callable(get):
        head = get()
        for name, module in model.named_modules():
            if module is head and name:
                return name
    return "head" if isinstance(getattr(model, "head", None), nn.Module) else None


def head_fits(model: nn.Module, sd: Mapping[str, Any]) -> bool:
    """Whether ``sd`` holds every classifier tensor of ``model`` with the model's shape.

    The one head check of the package: where it fails, loaders keep (or re-initialise) the
    model's own head instead of the checkpoint's (fine-tuning to another class count).
    A model without classifier parameters (``num_classes=0``) never fits.
    """
    prefix = classifier_prefix(model)
    own = {k: v for k, v in model.state_dict().items() if prefix and k.startswith(prefix + ".")}
    return bool(own) and all(k in sd and tuple(sd[k].shape) == tuple(v.shape) for k, v in own.items())


def _uniformer_depths(keys: Any) -> list[int]:
    depths: dict[int, int] = {}
    for k in keys:
        m = re.match(r"blocks(\d)\.(\d+)\.", k)
        if m:
            s, i = int(m.group(1)), int(m.group(2))
            depths[s] = max(depths.get(s, 0), i + 1)
    return [depths.get(s, 0) for s in range(1, 5)]


def uniformer_layout(keys: Any) -> str:
    """UniFormer stage layout read from state-dict keys: ``L`` (local block: ``conv1``), ``G``
    (global block: ``attn.qkv``), ``?`` for a stage with neither (e.g. depth 0)."""
    kinds: dict[int, str] = {}
    for k in keys:
        m = re.match(r"blocks(\d)\.\d+\.(conv1|attn\.qkv)\.weight$", k)
        if m:
            kinds.setdefault(int(m.group(1)), "L" if m.group(2) == "conv1" else "G")
    return "".join(kinds.get(s, "?") for s in range(1, 5))


def _timesformer_depth(keys: Any) -> int:
    idx = [int(m.group(1)) for k in keys if (m := re.match(r"blocks\.(\d+)\.", k))]
    return max(idx) + 1 if idx else 0


def _hint(model_sd: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor], mismatched: list[str],
          head_prefix: str | None) -> str:
    """A short clause that says what the checkpoint probably is."""
    model_family = guess_family(model_sd.keys())
    ckpt_family = guess_family(sd.keys())
    if ckpt_family and model_family and ckpt_family != model_family:
        if ckpt_family == "timesformer-hf" and model_family == "timesformer":
            return "it uses Hugging Face TimeSformer key names, so load it through the TimeSformer checkpoint filter"
        return (f"it looks like a {_FAMILY_TITLE[ckpt_family]} checkpoint, so choose a "
                f"{'uniformer' if ckpt_family == 'uniformer' else 'timesformer'}_* model")
    if ckpt_family is None:
        return "its key names match neither UniFormer nor TimeSformer"
    if model_family == "uniformer":
        d_model, d_ckpt = _uniformer_depths(model_sd), _uniformer_depths(sd)
        if d_model != d_ckpt:
            size = {(3, 4, 8, 3): "UniFormer-S", (5, 8, 20, 7): "UniFormer-B"}.get(tuple(d_ckpt), "another size")
            return f"its stage depths are {d_ckpt} ({size}) but the model's are {d_model}"
        l_model, l_ckpt = uniformer_layout(model_sd), uniformer_layout(sd)
        if l_model != l_ckpt and "?" not in l_ckpt:
            return (f"its stage layout is {l_ckpt} but the model's is {l_model}, "
                    f"so build the model with layout={l_ckpt!r}")
    if model_family == "timesformer":
        d_model, d_ckpt = _timesformer_depth(model_sd), _timesformer_depth(sd)
        if d_model != d_ckpt:
            return f"it has {d_ckpt} blocks but the model has {d_model}"
        clauses = []
        if "time_embed" in mismatched:
            clauses.append(f"it was trained on {sd['time_embed'].shape[1]} frames (model: "
                           f"{model_sd['time_embed'].shape[1]})")
        if "pos_embed" in mismatched:
            clauses.append(f"its pos_embed has {sd['pos_embed'].shape[1]} tokens (model: "
                           f"{model_sd['pos_embed'].shape[1]}, "
                           "i.e. another image size such as 448 px for TimeSformer-HR)")
        if clauses:
            return " and ".join(clauses) + ", so choose the matching zoo entry"
    head_w = f"{head_prefix}.weight" if head_prefix else None
    if head_w and head_w in mismatched and head_w in sd:
        n_ckpt, n_model = sd[head_w].shape[0], model_sd[head_w].shape[0]
        if all(k.startswith(f"{head_prefix}.") for k in mismatched):
            return (f"it has {n_ckpt} classes but the model has {n_model}: pick the {n_ckpt}-class zoo entry, "
                    f"pass num_classes={n_ckpt}, or ignore the head to fine-tune a new one")
        return f"it has {n_ckpt} classes (model: {n_model}) and other layers differ too"
    return "it was saved from a differently configured model"


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (", …" if len(keys) > _MAX_LISTED else "")


def match_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], *, ignore_head: bool = False
                     ) -> OrderedDict[str, torch.Tensor]:
    """Return a ``state_dict`` that ``model.load_state_dict(..., strict=True)`` will accept fully.

    Missing BatchNorm ``num_batches_tracked`` counters (not used in eval) are filled from the
    model. With ``ignore_head`` the classifier (``model.get_classifier()``) is dropped from the
    checkpoint and its current (freshly initialised) values are kept — for fine-tuning to new
    classes. Anything else that is missing, unexpected or shaped differently raises
    :class:`CheckpointError` listing the keys and a hint about what the checkpoint is. Nothing
    is modified, so a failure leaves the model untouched.
    """
    model_sd = model.state_dict()
    sd = OrderedDict(sd)
    head_prefix = classifier_prefix(model)
    head_keys = {k for k in model_sd if head_prefix and k.startswith(f"{head_prefix}.")}
    if ignore_head and head_prefix:
        for k in [k for k in sd if k.startswith(f"{head_prefix}.")]:
            del sd[k]

    missing = [k for k in model_sd if k not in sd]
    unexpected = [k for k in sd if k not in model_sd]
    mismatched = [k for k in model_sd if k in sd and tuple(sd[k].shape) != tuple(model_sd[k].shape)]
    fillable = [k for k in missing if k.endswith("num_batches_tracked") or (ignore_head and k in head_keys)]
    missing = [k for k in missing if k not in fillable]

    if missing or unexpected or mismatched:
        def n_keys(n: int) -> str:
            return f"{n} key{'s' if n != 1 else ''}"

        parts = []
        if missing:
            parts.append(f"{n_keys(len(missing))} missing ({_listed(missing)})")
        if unexpected:
            parts.append(f"{n_keys(len(unexpected))} unexpected ({_listed(unexpected)})")
        if mismatched:
            shapes = [f"{k} {list(sd[k].shape)} vs {list(model_sd[k].shape)}" for k in mismatched]
            parts.append(f"{n_keys(len(mismatched))} with another shape, checkpoint vs model ({_listed(shapes)})")
        raise CheckpointError(
            f"The checkpoint does not fit {_model_title(model)}: {'; '.join(parts)}; "
            f"{_hint(model_sd, sd, mismatched, head_prefix)}."
        )
    out = OrderedDict()
    for k, v in model_sd.items():  # model order, so saved copies stay diffable
        out[k] = sd[k] if k in sd else v.detach().clone()
    return out


# =============================================================================== loading
def apply_filter(sd: Mapping[str, torch.Tensor], model: nn.Module,
                 filter_fn: Callable[..., Mapping[str, torch.Tensor]] | None) -> Mapping[str, torch.Tensor]:
    """Run a family's ``filter_fn(state_dict, model)``; its failures become :class:`CheckpointError`."""
    if filter_fn is None:
        return sd
    try:
        out = filter_fn(sd, model)
    except CheckpointError:
        raise
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError) as err:
        raise CheckpointError(
            f"Converting the checkpoint for {_model_title(model)} failed ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(out, Mapping):
        raise CheckpointError(f"The checkpoint filter for {_model_title(model)} did not return a state dict.")
    return out


def load_checkpoint(
    model: nn.Module,
    source: PathLike | Mapping[str, Any],
    *,
    filter_fn: Callable[..., Mapping[str, torch.Tensor]] | None = None,
    ignore_head: bool = False,
    use_ema: bool = False,
) -> nn.Module:
    """Load ``source`` (a path or an already-read object) into ``model``, strictly, or raise.

    read → :func:`unwrap_state_dict` → ``filter_fn(state_dict, model)`` (the family's key
    conversion, e.g. ``checkpoint_filter_fn``) → :func:`match_state_dict` →
    :func:`~uniformer.models.checkpoint_guard.check_tensors` → ``load_state_dict(strict=True)``.
    Never a silent partial load: the model is only written once every key, shape and value has
    been checked. A path is read within the model's budget (its state-dict bytes with a margin).
    """
    if isinstance(source, (str, os.PathLike)):
        obj = read_checkpoint(source, max_bytes=model_budget(model))
    else:
        obj = source
    raw = unwrap_state_dict(obj, use_ema=use_ema)
    check_tensors(raw)  # NaN/Inf, bool, complex, meta, sparse: named (as saved) before any conversion
    matched = match_state_dict(model, apply_filter(raw, model, filter_fn), ignore_head=ignore_head)
    try:
        model.load_state_dict(matched, strict=True)
    except RuntimeError as err:  # shapes were checked, so this is a dtype/device problem
        # torch's first line is only "Error(s) in loading state_dict for X:"; the reason follows it
        reason = " ".join(line.strip() for line in str(err).splitlines()[1:] if line.strip())[:300]
        raise CheckpointError(f"Copying the checkpoint into {_model_title(model)} failed "
                              f"({reason or str(err).strip()}).") from err
    return model


def load_pretrained(model: nn.Module, path: PathLike, *, filter_fn: Callable[..., Any] | None = None) -> None:
    """timm ``custom_load`` hook: strict load of ``path``; the head is re-initialised only when
    the model was built with a class count other than its pretrained config's."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    n_cfg = cfg.get("num_classes") if isinstance(cfg, Mapping) else None
    n_model = getattr(model, "num_classes", n_cfg)
    load_checkpoint(model, path, filter_fn=filter_fn, ignore_head=n_cfg is not None and n_model != n_cfg)
