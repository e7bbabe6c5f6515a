"""The model zoo: one entry per released (or bundled) checkpoint, and everything that travels
with its weights.

Why one table: a checkpoint is only usable together with its architecture, its class list *in
the head's order*, its test-time protocol (frames, stride, clips, crops, normalisation, channel
order) and where to get it. Keeping those facts in one :class:`ZooEntry` per checkpoint means
the predictor, the app and the reports can never disagree. Architectures come from the model
files (``ARCHS``), and the timm pretrained cfgs registered there name the same weight sources
(``tests/test_zoo.py`` checks every entry against them). Published accuracy / GFLOPs are read
from ``assets/published_results.csv`` at import, never retyped here.

Entry points:

- :func:`create_model` — build a zoo model, optionally with weights from a path or the hub
  (strict load through the family filter), with ``model.zoo_entry`` and ``model.label_names``;
- :func:`resolve_weights` — the one weight policy (bundled file, local Hugging Face cache, a
  download only when allowed, else random weights, flagged), used by the predictor, the app and
  evaluation; :func:`fetch_weights` — the weights file itself (downloads when allowed);
- :func:`get_entry`, :func:`list_models`, :func:`labels_for`.

The timm constructors and pretrained cfgs of the released names are registered by the model
files (``uniformer/models/uniformer.py``, ``timesformer.py``); the zoo only reads the family
description (:func:`uniformer.models.get_family`) and never generates constructors. Entries added
at run time (:func:`add_entry`: tests, lab models) are built through their family by
:func:`create_model` and are not timm names.

Naming: UniFormer entries are named exactly like the files in ``Sense-X/uniformer_video``
(``uniformer_small_k400_16x8``: size, dataset, frames x sampling stride;
``uniformer_base_sthv2_32_prek600``: Something-Something V2, 32 frames, K600-pretrained).
TimeSformer entries follow the official file names: ``timesformer_{base,hr,large}_{k400,k600}_{T}x{rate}``
and ``timesformer_{base,hr,large}_ssv2_{T}``.
"""
from __future__ import annotations

import csv
import difflib
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
from timm.models import build_model_with_cfg
from torch import nn

from uniformer import assets
from uniformer.data.sampling import TestProtocol
from uniformer.errors import UniformerLabError, UnknownModelError, WeightsUnavailableError
from uniformer.models import timesformer as timesformer_arch
from uniformer.models import uniformer as uniformer_arch
from uniformer.models.checkpoint import (
    apply_filter,
    head_fits,
    load_checkpoint,
    read_checkpoint,
    unwrap_state_dict,
)
from uniformer.models.checkpoint_guard import check_tensors, model_budget
from uniformer.models.family import get_family
from uniformer.models.registry import MEAN, STD, video_cfg
from uniformer.models.uniformer import UNIFORMER_HUB, UNIFORMER_ORIGIN

__all__ = [
    "ASSETS",
    "ZOO",
    "Published",
    "DEFAULT_MODEL",
    "WeightsChoice",
    "ZooEntry",
    "add_entry",
    "create_model",
    "fetch_weights",
    "get_entry",
    "label_permutation",
    "labels_for",
    "list_models",
    "remove_entry",
    "resolve_weights",
]

Family = Literal["uniformer", "timesformer"]

DEFAULT_MODEL = assets.DEFAULT_MODEL  # bundled and trained, never random weights (set in uniformer/assets.py)

ASSETS = assets.ASSETS_DIR  # UNIFORMER_LAB_ASSETS moves it (uniformer/assets.py)
LABELS_DIR = assets.LABELS_DIR
CHECKPOINTS_DIR = assets.CHECKPOINTS_DIR
PUBLISHED_CSV = assets.PUBLISHED_CSV


# ================================================================================ entries
@dataclass(frozen=True)
class Published:
    """A row of ``assets/published_results.csv`` for this checkpoint and its test protocol.

    Accuracy comes from the row that describes the *released* weights when the model-zoo README
    lists them (else the paper); GFLOPs are a property of the architecture and are taken from the
    first row of the same model / dataset / views that prints them. ``source`` names both.
    """

    top1: float | None
    top5: float | None
    views: str  # "clips x crops", as in the CSV
    gflops_per_view: float | None
    gflops_total: float | None
    params_m: float | None
    source: str
    note: str = ""


@dataclass(frozen=True, eq=False)
class ZooEntry:
    """Everything that travels with one checkpoint.

    ``arch`` holds the model constructor's keyword arguments (without ``num_classes``).
    ``labels`` is a file name under ``assets/labels/`` listing class names in the *head's*
    order, or ``None`` when that list is not shipped (outputs are then called ``class N``).
    Weights come from ``file`` (bundled, relative to ``assets/checkpoints/``), else
    ``hf_hub_id``/``hf_hub_filename``; ``url`` is the human-facing origin for a manual download.
    """

    name: str
    family: Family
    arch: dict[str, Any]
    dataset: str
    num_classes: int
    labels: str | None
    protocol: TestProtocol
    hf_hub_id: str | None = None
    hf_hub_filename: str | None = None
    url: str | None = None
    file: str | None = None
    published: Published | None = None
    pretrain: str = ""
    license: str | None = None
    paper: str = ""
    notes: tuple[str, ...] = ()
    kind: Literal["official", "local"] = "official"
    synthetic: bool = False  # trained on the synthetic generator's classes: predictions on real videos say little

    # ------------------------------------------------------------------------- derived
    @property
    def num_frames(self) -> int:
        return self.protocol.num_frames

    @property
    def input_size(self) -> tuple[int, int, int, int]:
        """``(C, T, H, W)`` of one view."""
        c = self.protocol.crop_size
        return (int(self.arch.get("in_chans", 3)), self.protocol.num_frames, c, c)

    @property
    def local_path(self) -> Path | None:
        return CHECKPOINTS_DIR / self.file if self.file else None

    @property
    def where(self) -> str:
        """Where a user gets the weights, in words (for error messages and cards)."""
        if self.file:
            return f"the bundled file assets/checkpoints/{self.file}"
        if self.hf_hub_id:
            hub = f"https://huggingface.co/{self.hf_hub_id}"
            extra = f" (original release: {self.url})" if self.url else ""
            return f"{self.hf_hub_filename or 'the weights file'} from {hub}{extra}"
        return self.url or "the original authors' release"

    def label_names(self) -> list[str]:
        return labels_for(self)

    def card(self) -> str:
        """A short Markdown model card: what it is, how it was tested, where the weights are."""
        p = self.protocol
        lines = [f"### `{self.name}`", ""]
        lines.append(f"- family: {self.family}; dataset: {self.dataset} ({self.num_classes} classes); "
                     f"pretraining: {self.pretrain or 'n/a'}")
        lines.append(f"- input per view: {p.num_frames} frames x {p.crop_size} px, "
                     f"{'BGR' if p.bgr else 'RGB'}, mean {p.mean[0]} / std {p.std[0]}")
        rate = f", sampling rate {p.sampling_rate}" if p.sampler.endswith("dense") else ""
        lines.append(f"- test protocol: {p.sampler}{rate}; {p.num_clips} clip(s) x {p.num_crops} crop(s), "
                     f"short side {p.short_side}, logits {'summed' if p.ensemble == 'sum' else 'averaged'} over views")
        if self.labels:
            lines.append(f"- labels: `assets/labels/{self.labels}` (head order)")
        else:
            lines.append("- labels: the class-name list for this head is not shipped; outputs are labelled `class N`")
        if self.published:
            pub = self.published
            acc = f"top-1 {pub.top1}" + (f" / top-5 {pub.top5}" if pub.top5 is not None else "")
            flops = (f"; {pub.gflops_per_view} GFLOPs/view x {pub.views} = {pub.gflops_total} GFLOPs"
                     if pub.gflops_per_view is not None else "")
            lines.append(f"- published: {acc} ({pub.views} views){flops} — {pub.source}")
        lines.append(f"- weights: {self.where}")
        if self.license:
            lines.append(f"- license: {self.license}")
        lines.extend(f"- note: {n}" for n in self.notes)
        return "\n".join(lines)


ZOO: OrderedDict[str, ZooEntry] = OrderedDict()


# ================================================================= published results
@lru_cache(maxsize=1)
def _published_rows() -> tuple[dict[str, str], ...]:
    if not PUBLISHED_CSV.is_file():
        return ()
    with PUBLISHED_CSV.open(newline="", encoding="utf-8") as f:
        return tuple(csv.DictReader(f))


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _published(model: str, variant: str, dataset: str, views: str, pretrain: str, frames: int) -> Published | None:
    rows = [
        r for r in _published_rows()
        if r["model"] == model and r["variant"] == variant and r["dataset"] == dataset
        and r["views"] == views and r["pretrain"].startswith(pretrain) and r["frames"] == str(frames)
        and "(quoted)" not in r["source"] and r["top1"]
    ]
    if not rows:
        return None
    released = [r for r in rows if "README" in r["source"]]
    acc = (released or rows)[0]
    flops = next((r for r in [acc, *rows] if r["gflops_per_view"]), None)
    source = acc["source"]
    if flops is not None and flops["source"] != source:
        source = f"{source}; GFLOPs: {flops['source']}"
    return Published(
        top1=_num(acc["top1"]), top5=_num(acc["top5"]), views=views,
        gflops_per_view=_num(flops["gflops_per_view"]) if flops else None,
        gflops_total=_num(flops["gflops_total"]) if flops else None,
        params_m=_num(acc["params_m"]) or (_num(flops["params_m"]) if flops else None),
        source=source, note=acc["note"],
    )


# =================================================================== official entries
_UNIFORMER_SIZES = {"small": ("S", uniformer_arch.ARCHS["small"]), "base": ("B", uniformer_arch.ARCHS["base"])}
# (size, dataset, frames, sampling rate) as in the official model zoo (S 32x4 K400 has a log only).
_UNIFORMER_KINETICS = (
    ("small", "K400", 8, 8), ("small", "K400", 16, 4), ("small", "K400", 16, 8),
    ("base", "K400", 8, 8), ("base", "K400", 16, 4), ("base", "K400", 16, 8), ("base", "K400", 32, 4),
    ("small", "K600", 16, 4), ("small", "K600", 16, 8),
    ("base", "K600", 16, 4), ("base", "K600", 16, 8), ("base", "K600", 32, 4),
)
_UNIFORMER_SSV = tuple(
    (size, ds, frames, pre) for ds in ("SSv1", "SSv2") for size in ("small", "base")
    for frames in (16, 32) for pre in ("K400", "K600")
)
_K400_UNIFORMER_NOTE = ("Head order is UniFormer's own Kinetics-400 list ('riding a bike' = 0), not alphabetical; "
                        "see label_permutation() to compare with alphabetical-order models.")
_K_PROTOCOL_NOTE = ("Kinetics test: 4 dense clips x 1 centre crop after resizing the short side to 224 "
                    "(the repo README's setting); the shipped test.yaml resizes to 256 instead — use "
                    "dataclasses.replace(entry.protocol, short_side=256) to reproduce that variant.")


#: The papers the zoo's entries cite (one string each, shared by official and local entries).
_UNIFORMER_PAPER = "UniFormer (ICLR 2022, arXiv 2201.04676)"
_TIMESFORMER_PAPER = "Is Space-Time Attention All You Need for Video Understanding? (ICML 2021, arXiv 2102.05095)"


def _uniformer_entries() -> list[ZooEntry]:
    out = []
    for size, ds, frames, rate in _UNIFORMER_KINETICS:
        letter, arch = _UNIFORMER_SIZES[size]
        name = f"uniformer_{size}_{ds.lower()}_{frames}x{rate}"
        k400 = ds == "K400"
        notes = [_K_PROTOCOL_NOTE]
        notes.append(_K400_UNIFORMER_NOTE if k400 else
                     "The Kinetics-600 checkpoints use UniFormer's own 600-class order, which is not shipped.")
        if size == "small" and frames == 16 and rate == 8 and k400:
            notes.append("This is the checkpoint of the official Hugging Face demo.")
        out.append(ZooEntry(
            name=name, family="uniformer", arch=dict(arch, img_size=224), dataset=ds,
            num_classes=400 if k400 else 600,
            labels="kinetics400_uniformer_order.txt" if k400 else None,
            protocol=TestProtocol("uniformer_dense", num_frames=frames, sampling_rate=rate, num_clips=4,
                                  num_crops=1, short_side=224, crop_size=224, mean=MEAN, std=STD),
            hf_hub_id=UNIFORMER_HUB, hf_hub_filename=f"{name}.pth", url=UNIFORMER_ORIGIN,
            published=_published("UniFormer", f"UniFormer-{letter} {frames}x{rate}", ds, "4x1", "IN-1K", frames),
            pretrain="IN-1K", license="mit", paper=_UNIFORMER_PAPER,
            notes=tuple(notes),
        ))
    for size, ds, frames, pre in _UNIFORMER_SSV:
        letter, arch = _UNIFORMER_SIZES[size]
        name = f"uniformer_{size}_sth{ds[-2:].lower()}_{frames}_pre{pre.lower()}"
        notes = ["Something-Something test: 1 clip of segment-middle frames x 3 crops (short side 224).",
                 "Frames are fed in BGR order: the official Something-Something loader (slowfast/datasets/sth.py) "
                 "reads JPEGs with OpenCV and never converts (per the code; not verified against the weights)."]
        if ds == "SSv2":
            notes.append("Label order assumed to be the official labels.json order (ssv2.txt), as produced by "
                         "the TSM-style split files UniFormer trains from; not verified on a golden clip.")
        else:
            notes.append("The Something-Something V1 class list is not shipped; outputs are labelled `class N`; "
                         "the hub file name follows the repository's pattern and was not verified.")
        out.append(ZooEntry(
            name=name, family="uniformer", arch=dict(arch, img_size=224), dataset=ds, num_classes=174,
            labels="ssv2.txt" if ds == "SSv2" else None,
            protocol=TestProtocol("uniformer_segment", num_frames=frames, num_clips=1, num_crops=3,
                                  short_side=224, crop_size=224, mean=MEAN, std=STD, bgr=True),
            hf_hub_id=UNIFORMER_HUB, hf_hub_filename=f"{name}.pth", url=UNIFORMER_ORIGIN,
            published=_published("UniFormer", f"UniFormer-{letter} {frames}f", ds, "1x3", f"IN-1K+{pre}", frames),
            pretrain=f"IN-1K+{pre}", license="mit", paper=_UNIFORMER_PAPER,
            notes=tuple(notes),
        ))
    return out


_DROPBOX = {  # official release links (facebookresearch/TimeSformer README, model zoo)
    "TimeSformer_divST_8x32_224_K400": "g5t24we9gl5yk88",
    "TimeSformer_divST_16x16_448_K400": "6f0x172lpqy3oxt",
    "TimeSformer_divST_96x4_224_K400": "r1iuxahif3sgimo",
    "TimeSformer_divST_8x32_224_K600": "4h2qt41m2z3aqrb",
    "TimeSformer_divST_16x16_448_K600": "ft1e92g2vhvxecv",
    "TimeSformer_divST_96x4_224_K600": "857rx6xeclxfhdg",
    "TimeSformer_divST_8_224_SSv2": "tybhuml57y24wpm",
    "TimeSformer_divST_16_448_SSv2": "9t68uzk8w2fpfnv",
    "TimeSformer_divST_64_224_SSv2": "3f1rm2al8mhprwa",
}
# variant: (CSV variant, hub size word, img size, Kinetics frames x rate, SSv2 frames)
_TIMESFORMER_VARIANTS = {
    "base": ("TimeSformer (base)", "base", 224, (8, 32), 8),
    "hr": ("TimeSformer-HR", "hr", 448, (16, 16), 16),
    "large": ("TimeSformer-L", "large", 224, (96, 4), 64),
}
_TIMESFORMER_ARCH = timesformer_arch.ARCHS["base"]


def _timesformer_entries() -> list[ZooEntry]:
    out = []
    for ds in ("K400", "K600", "SSv2"):
        for variant, (csv_variant, hub_word, img, (kf, krate), sf) in _TIMESFORMER_VARIANTS.items():
            kinetics = ds != "SSv2"
            frames = kf if kinetics else sf
            if kinetics:
                name = f"timesformer_{variant}_{ds.lower()}_{kf}x{krate}"
                official = f"TimeSformer_divST_{kf}x{krate}_{img}_{ds}"
                protocol = TestProtocol("timesformer_dense", num_frames=kf, sampling_rate=krate, target_fps=30.0,
                                        num_clips=1, num_crops=3, short_side=img, crop_size=img, mean=MEAN, std=STD)
                pretrain = "IN-21K"
            else:
                name = f"timesformer_{variant}_ssv2_{sf}"
                official = f"TimeSformer_divST_{sf}_{img}_SSv2"
                protocol = TestProtocol("timesformer_segment", num_frames=sf, num_clips=1, num_crops=3,
                                        short_side=img, crop_size=img, mean=MEAN, std=STD, bgr=True)
                pretrain = "IN-1K"
            notes = [f"Official file {official}.pyth ({{'model_state'}} with 'model.' keys); the hub copy is the "
                     "Hugging Face port (same weights, HF key names, converted by the TimeSformer filter)."]
            if ds == "K400":
                notes.append("Head order: alphabetical Kinetics-400 (maintainers: 'the original Kinetics order'; "
                             "the Hugging Face port uses the alphabetical id2label).")
            elif ds == "K600":
                notes.append("The Kinetics-600 class list is not shipped; outputs are labelled `class N`.")
            else:
                notes.append("Frames are fed in BGR order: the official SSv2 loader reads JPEGs with OpenCV and never "
                             "converts (per the code; not verified against the weights).")
            out.append(ZooEntry(
                name=name, family="timesformer",
                arch=dict(_TIMESFORMER_ARCH, img_size=img, num_frames=frames), dataset=ds,
                num_classes={"K400": 400, "K600": 600, "SSv2": 174}[ds],
                labels={"K400": "kinetics400_alphabetical.txt", "K600": None, "SSv2": "ssv2.txt"}[ds],
                protocol=protocol,
                hf_hub_id=f"facebook/timesformer-{hub_word}-finetuned-{ds.lower()}",
                hf_hub_filename="pytorch_model.bin",
                url=f"https://www.dropbox.com/s/{_DROPBOX[official]}/{official}.pyth?dl=0",
                published=_published("TimeSformer", csv_variant, ds, "1x3", pretrain, frames),
                pretrain=pretrain, license="cc-by-nc-4.0",
                paper=_TIMESFORMER_PAPER, notes=tuple(notes),
            ))
    return out


# Bundled small models, trained by this project on its procedural motion dataset
# (uniformer/data/synthetic.py; configs/synthetic_*_tiny.toml; card: assets/checkpoints/README.md).
# They are the app's offline defaults. Both see 8 frames (every 2nd of a 16-frame span) at 64 px.
_SYNTH_PROTOCOL = TestProtocol("uniformer_dense", num_frames=8, sampling_rate=2, num_clips=1, num_crops=1,
                               short_side=64, crop_size=64, mean=MEAN, std=STD)
_SYNTH_NOTES = ("Trained from scratch on 64x64 procedural clips (12 time-reversal-paired motion classes); "
                "on real videos its predictions mean little, but every layer's maps are those of a trained model.",)
# The lab models (issue 13; configs/lab_*.toml, trained by ``python -m uniformer.ablate``, seed 0 of
# LLGG and TS; card: assets/checkpoints/README.md): 8 frames (every 2nd of 16) at 112 px of the lab
# preset, textured objects on natural backgrounds with camera motion, occluders and distractors.
_LAB_PROTOCOL = TestProtocol("uniformer_dense", num_frames=8, sampling_rate=2, num_clips=1, num_crops=1,
                             short_side=112, crop_size=112, mean=MEAN, std=STD)
_LAB_NOTES = ("Trained from scratch on 112x112 synthetic lab clips (natural textures, 12 motion classes: "
              "direction, time-reversal pairs, speed, occlusion order); on real videos its labels mean little, "
              "but its attention is that of a trained model at a grid where locality can be measured.",)
_LAB_GGGG_NOTES = ("Layout GGGG (the ablation's global-everywhere run, seed 0): its stage-1 attention compares "
                   "every token of a 28x28 grid per frame, where a 3x3 neighbourhood is 1 % of the frame, which is "
                   "the paper's Figure 1 question inside UniFormer. Not a default model.",)
LOCAL_ENTRIES: list[ZooEntry] = [
    ZooEntry(
        name="uniformer_tiny_synthetic_8x2", family="uniformer",
        arch=dict(uniformer_arch.ARCHS["tiny"]),
        dataset="synthetic-motion", num_classes=12, labels="synthetic_motion.txt", protocol=_SYNTH_PROTOCOL,
        file="uniformer_tiny_synthetic_8x2.safetensors", pretrain="none", license="mit",
        paper=_UNIFORMER_PAPER, notes=_SYNTH_NOTES, kind="local", synthetic=True,
    ),
    ZooEntry(
        name="timesformer_tiny_synthetic_8x2", family="timesformer",
        arch=dict(timesformer_arch.ARCHS["tiny"]),
        dataset="synthetic-motion", num_classes=12, labels="synthetic_motion.txt", protocol=_SYNTH_PROTOCOL,
        file="timesformer_tiny_synthetic_8x2.safetensors", pretrain="none", license="mit",
        paper=_TIMESFORMER_PAPER, notes=_SYNTH_NOTES, kind="local", synthetic=True,
    ),
    *(ZooEntry(
        name=name, family=family, arch=dict(arch),
        dataset="synthetic-lab", num_classes=12, labels="lab_motion.txt", protocol=_LAB_PROTOCOL,
        file=f"{name}.safetensors", pretrain="none", license="mit", paper=paper, notes=_LAB_NOTES + extra,
        kind="local", synthetic=True,
    ) for name, family, arch, paper, extra in (
        ("uniformer_lab", "uniformer", uniformer_arch.ARCHS["lab"], _UNIFORMER_PAPER, ()),
        ("timesformer_lab", "timesformer", timesformer_arch.ARCHS["lab"], _TIMESFORMER_PAPER, ()),
        ("uniformer_lab_gggg", "uniformer", uniformer_arch.ARCHS["lab_gggg"], _UNIFORMER_PAPER, _LAB_GGGG_NOTES),
    )),
]


# ============================================================================= lookups
def add_entry(entry: ZooEntry) -> ZooEntry:
    """Add (or replace) an entry of a known family; :func:`create_model` builds it through that
    family (it does not become a timm name: those are registered by the model files)."""
    get_family(entry.family)
    ZOO[entry.name] = entry
    return entry


def remove_entry(name: str) -> None:
    """Drop an entry (for bundled models that were deleted, and tests)."""
    ZOO.pop(name, None)


def get_entry(name: str) -> ZooEntry:
    """The entry called ``name``; :class:`UnknownModelError` with close matches otherwise."""
    entry = ZOO.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(ZOO), n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see uniformer.zoo.list_models()."
        raise UnknownModelError(f"Unknown model '{name}'; {hint}")
    return entry


def list_models(family: str | None = None, dataset: str | None = None) -> list[str]:
    """Entry names in zoo order, optionally filtered by family and dataset (case-insensitive)."""
    return [
        e.name for e in ZOO.values()
        if (family is None or e.family == family.lower()) and (dataset is None or e.dataset.lower() == dataset.lower())
    ]


@cache
def _read_labels(filename: str) -> tuple[str, ...]:
    path = LABELS_DIR / filename
    try:
        names = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise UniformerLabError(
            f"The label list {path} is missing; restore assets/labels/ from the repository.") from err
    return tuple(n for n in names if n.strip())


def labels_for(name: str | ZooEntry) -> list[str]:
    """Class names in the head's order; ``class N`` names when the list is not shipped."""
    entry = name if isinstance(name, ZooEntry) else get_entry(name)
    if entry.labels is None:
        return [f"class {i}" for i in range(entry.num_classes)]
    names = list(_read_labels(entry.labels))
    if len(names) != entry.num_classes:
        raise UniformerLabError(
            f"The label list {entry.labels} has {len(names)} names but {entry.name} has {entry.num_classes} classes."
        )
    return names


def label_permutation(src: list[str], dst: list[str]) -> list[int]:
    """``order`` such that ``dst[i] == src[order[i]]``: reorder logits or head rows from the
    ``src`` class order to the ``dst`` order (e.g. UniFormer K400 order → alphabetical):
    ``logits[:, order]`` or ``head.weight[order]``."""
    index = {n: i for i, n in enumerate(src)}
    if len(index) != len(src) or sorted(src) != sorted(dst):
        raise ValueError("The two label lists do not contain the same class names.")
    return [index[n] for n in dst]


# ============================================================================= weights
def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def fetch_weights(name: str, *, local_files_only: bool | None = None,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the entry's weights file: bundled file, else the Hugging Face cache (downloading
    when allowed). ``local_files_only`` defaults to ``HF_HUB_OFFLINE``. Raises
    :class:`WeightsUnavailableError` with one sentence saying what to download and how to pass it.
    """
    entry = get_entry(name)
    manual = f"pass it with --checkpoint PATH (or create_model('{entry.name}', checkpoint=PATH))"
    if entry.file:
        path = entry.local_path
        if path is not None and path.is_file():
            return path
        raise WeightsUnavailableError(
            f"The bundled weights of {entry.name} ({path}) are missing; restore assets/checkpoints/ or {manual}.")
    if not entry.hf_hub_id or not entry.hf_hub_filename:
        raise WeightsUnavailableError(
            f"No hub copy of {entry.name} is known; download it from {entry.url or 'the authors'} and {manual}.")
    if local_files_only is None:
        local_files_only = _hf_offline()
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        raise WeightsUnavailableError(
            f"huggingface_hub is not installed; download {entry.where} and {manual}.") from None
    try:
        path = hf_hub_download(repo_id=entry.hf_hub_id, filename=entry.hf_hub_filename,
                               local_files_only=local_files_only, cache_dir=cache_dir)
    except Exception as err:  # offline, not cached, 404, gated, network or disk errors
        why = "it is not in the local Hugging Face cache and downloads are off (HF_HUB_OFFLINE)" if local_files_only \
            else f"the download failed ({type(err).__name__})"
        raise WeightsUnavailableError(
            f"Weights for {entry.name} are unavailable because {why}: download {entry.where} and {manual}.") from err
    return Path(path)


WeightSource = Literal["bundled", "hub cache", "download", "downloaded", "uploaded", "random"]


@dataclass(frozen=True)
class WeightsChoice:
    """Where a model's weights come from. ``source`` is one of ``bundled``, ``hub cache``,
    ``download`` (allowed, not fetched yet: ``path`` is None), ``downloaded``, ``uploaded``
    (a user's file) or ``random`` (no weights anywhere: predictions are meaningless)."""

    path: Path | None
    source: WeightSource

    @property
    def random(self) -> bool:
        return self.path is None and self.source == "random"

    def describe(self) -> str:
        if self.random:
            return "random initialisation (no weights on disk): predictions are meaningless"
        if self.source == "download":
            return "published weights (downloaded on first use)"
        return f"{self.source} weights: {self.path.name if self.path else '?'}"


def resolve_weights(name: str, *, allow_download: bool | None = False, fetch: bool = False,
                    required: bool = False) -> WeightsChoice:
    """The one weight policy: the bundled file, else the local Hugging Face cache, else a download
    (only with ``allow_download``, ``None`` meaning "unless HF_HUB_OFFLINE"; done now with
    ``fetch``, else left for later as source ``download``), else random weights (``choice.random``).

    Never touches the network unless ``allow_download and fetch``. ``required=True`` raises
    :func:`fetch_weights`'s one-sentence :class:`WeightsUnavailableError` instead of choosing
    random weights (evaluation, where random weights make no sense).
    """
    entry = get_entry(name)
    if allow_download is None:
        allow_download = not _hf_offline()
    if entry.file:
        path = entry.local_path
        if path is not None and path.is_file():
            return WeightsChoice(path, "bundled")
    elif entry.hf_hub_id and entry.hf_hub_filename:
        try:
            return WeightsChoice(fetch_weights(name, local_files_only=True), "hub cache")
        except WeightsUnavailableError:
            pass
        if allow_download and fetch:
            return WeightsChoice(fetch_weights(name, local_files_only=False), "downloaded")
        if allow_download:
            return WeightsChoice(None, "download")
    if required:
        fetch_weights(name, local_files_only=not allow_download)  # raises: says what to download and how
    return WeightsChoice(None, "random")


# ======================================================================== building models
def _pretrained_cfg(entry: ZooEntry) -> dict[str, Any]:
    """timm ``PretrainedCfg`` fields of an entry, so a zoo model carries ``pretrained_cfg`` like a
    timm one (architecture name for messages, class count for head rules, input normalisation)."""
    p = entry.protocol
    return video_cfg(num_classes=entry.num_classes, img_size=p.crop_size, first_conv=get_family(entry).first_conv,
                     architecture=entry.name, mean=p.mean, std=p.std, crop_pct=p.crop_size / p.short_side,
                     file=str(entry.local_path) if entry.file else None, hf_hub_id=entry.hf_hub_id,
                     hf_hub_filename=entry.hf_hub_filename, license=entry.license, origin_url=entry.url,
                     paper_name=entry.paper or None)


def create_model(
    name: str,
    *,
    checkpoint: str | os.PathLike | None = None,
    pretrained: bool = False,
    num_classes: int | None = None,
    device: str = "cpu",
    **kwargs: Any,
) -> nn.Module:
    """Build zoo model ``name`` in eval mode, with ``model.zoo_entry`` and ``model.label_names``.

    Weights: ``checkpoint`` (a path, loaded strictly through the family filter), else
    ``pretrained=True`` (:func:`fetch_weights`), else random init. With an explicit
    ``num_classes`` that differs from the checkpoint's head, the head is left at its init
    (fine-tuning); otherwise any mismatch raises :class:`CheckpointError`. Extra keyword
    arguments go to the model constructor (e.g. ``drop_path_rate``).
    """
    entry = get_entry(name)
    family = get_family(entry)
    n = entry.num_classes if num_classes is None else int(num_classes)
    build_kwargs = {**entry.arch, **kwargs, "num_classes": n}
    if str(device) == "meta":  # shapes only (FLOPs, key lists): never allocate or initialise
        if checkpoint is not None or pretrained:
            raise ValueError("Weights cannot be loaded into a model on the meta device.")
        with torch.device("meta"):
            model = build_model_with_cfg(family.model_cls, entry.name, False, pretrained_cfg=_pretrained_cfg(entry),
                                         **build_kwargs)
    else:
        model = build_model_with_cfg(family.model_cls, entry.name, False, pretrained_cfg=_pretrained_cfg(entry),
                                     **build_kwargs)
    if checkpoint is None and pretrained:
        checkpoint = fetch_weights(entry.name)
    if checkpoint is not None:
        raw = unwrap_state_dict(read_checkpoint(checkpoint, max_bytes=model_budget(model)))
        check_tensors(raw)  # non-finite / bool / complex / meta / sparse: refused before the family filter
        sd = apply_filter(raw, model, family.checkpoint_filter_fn)
        ignore_head = n != entry.num_classes and not head_fits(model, sd)
        load_checkpoint(model, sd, ignore_head=ignore_head)
    model.zoo_entry = entry
    model.label_names = labels_for(entry) if n == entry.num_classes else [f"class {i}" for i in range(n)]
    return model.to(device).eval()


for _entry in (*_uniformer_entries(), *_timesformer_entries(), *LOCAL_ENTRIES):
    ZOO[_entry.name] = _entry
del _entry
