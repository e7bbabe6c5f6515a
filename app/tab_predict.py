"""Predict tab: top-5 of one or more models on one video, the frames they saw, and timings.

``predict`` is a plain function (usable without the UI, registered as ``/predict``); ``models``
is the ``/models`` endpoint. Each model reads the video with its own test protocol (possibly
reduced to ``views``); a clip decoded for one protocol is cached and reused by the attention tab.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.common import Progress, friendly, no_progress, topk_cards_html
from app.preview import browser_note
from app.state import AppState
from uniformer.cost import check_cancelled, request_cost, run_cost
from uniformer.errors import UniformerLabError
from uniformer.jsonsafe import finite
from uniformer.models.family import get_family

MAX_MODELS = 4          # models per request: each one is a full forward pass on the server
MAX_THUMBS = 16         # sampled-frame thumbnails shown per model
VIEW_CHOICES = ["1x1", "protocol", "2x1", "4x1", "1x3"]


def parse_view_choice(text: str | None, default: tuple[int, int]) -> tuple[int, int] | None:
    """``"1x1"`` → (1, 1); ``"protocol"`` → None (the checkpoint's own test views)."""
    from uniformer.data.sampling import parse_views

    if text is None or not str(text).strip():
        return default
    text = str(text).strip().lower()
    if text.startswith("protocol"):
        return None
    return parse_views(text.split()[0])


def _as_list(models: str | Sequence[str] | None) -> list[str]:
    if models is None:
        return []
    if isinstance(models, str):
        models = [m for m in models.split(",")]
    out: list[str] = []
    for m in models:
        m = str(m).strip()
        if m and m not in out:
            out.append(m)
    return out


def _thumb_items(family: str, clip: Any, max_items: int = MAX_THUMBS) -> list[tuple[np.ndarray, str]]:
    """Thumbnails captioned like 'UniFormer f12' (or 'UniFormer c1 f68' with several clips)."""
    plan = clip.prepared.clips.plan
    who = get_family(family).title
    many = len(plan.clips) > 1
    items = [(clip.thumbs[c][i], f"{who} {f'c{c} ' if many else ''}f{int(idx)}")
             for c, frames in enumerate(plan.clips) for i, idx in enumerate(frames)]
    if len(items) > max_items:
        pick = np.linspace(0, len(items) - 1, max_items).round().astype(int)
        items = [items[i] for i in sorted(set(pick.tolist()))]
    return items


def predict(
    state: AppState,
    video: Any,
    models: str | Sequence[str] | None = None,
    views: str | None = "1x1",
    checkpoint: Any = None,
    checkpoint_model: str | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], str, list[tuple[np.ndarray, str]], str]:
    """Run every chosen model (and the uploaded checkpoint, if any) on ``video``.

    Returns ``(result, cards_html, frames, status_markdown)``; ``result`` is the JSON payload
    (per model: top-5, weights, views, frames used, timings).
    """
    progress = progress or no_progress
    start = time.perf_counter()
    path = state.check_path(video, what="video")
    names = _as_list(models)
    if checkpoint is not None and checkpoint != "":
        if not checkpoint_model:
            checkpoint_model = names[0] if names else None
        if not checkpoint_model:
            raise UniformerLabError("Choose which architecture the uploaded checkpoint is for.")
    if not names and checkpoint in (None, ""):
        raise UniformerLabError("Choose at least one model.")
    if len(names) + (checkpoint not in (None, "")) > MAX_MODELS:
        raise UniformerLabError(f"Choose at most {MAX_MODELS} models per request; each one is a full forward pass.")
    view_choice = parse_view_choice(views, state.config.views)

    jobs: list[tuple[str, Any]] = [(n, None) for n in names]
    if checkpoint not in (None, ""):
        jobs.append((str(checkpoint_model), checkpoint))
    state.budget.admit(request_cost(run_cost(name, view_choice) for name, _ in jobs))  # priced before loading

    results: list[dict[str, Any]] = []
    gallery: list[tuple[np.ndarray, str]] = []
    notes: list[str] = []
    info: dict[str, Any] = {}
    seen_protocols: set = set()
    n = len(jobs)
    for i, (name, ckpt) in enumerate(jobs):
        check_cancelled()  # the client may have gone while the previous model ran
        progress(i / n, desc=f"Loading {name}")
        t0 = time.perf_counter()
        lm, model_cached = state.get_model(name, ckpt)
        predictor = lm.with_views(view_choice)
        progress((i + 0.2) / n, desc=f"Decoding the video for {name}")
        clip, clip_cached = state.prepare(path, predictor.protocol)
        progress((i + 0.4) / n, desc=f"Running {lm.label} ({predictor.protocol.num_views} view(s))")
        with lm.lock:
            pred = predictor.predict(path, prepared=clip.prepared, topk=5)
        wall = time.perf_counter() - t0
        state.record_latency(lm.name, pred.timings["model_s"] / max(1, len(pred.view_logits)))
        label = lm.label
        results.append({
            "model": label,
            "name": lm.name,
            "weights": pred.weights,
            "random_weights": lm.weights.random,
            "notes": list(predictor.notes),  # what its labels can mean (synthetic classes, random weights)
            "views": pred.views,
            "device": pred.device,
            "top5": [{"label": lbl, "probability": round(float(p), 6)} for lbl, p in pred.topk],
            "frames_used": pred.frames_used,
            "timings": {**{k: round(v, 4) for k, v in pred.timings.items()}, "wall_s": round(wall, 4),
                        "model_load_s": 0.0 if model_cached else round(lm.load_s, 4)},
            "clip_cached": clip_cached,
            "model_cached": model_cached,
        })
        if not info:
            info = {k: pred.video_info.get(k)
                    for k in ("width", "height", "rotation", "num_frames", "fps", "duration", "codec")}
            info["decoder"] = pred.backend
        for note in pred.notes:
            if note not in notes and note not in predictor.notes:  # model notes go on its card
                notes.append(note)
        if predictor.protocol not in seen_protocols:
            seen_protocols.add(predictor.protocol)
            gallery.extend(_thumb_items(lm.family, clip))
    progress(1.0, desc="Done")

    total = time.perf_counter() - start
    result = finite({"video": info, "models": results, "notes": notes, "request_s": round(total, 4)})  # no NaN
    status = [
        f"**Done in {total:.2f} s** — {info.get('width')}×{info.get('height')}, {info.get('num_frames')} frames at "
        f"{(info.get('fps') or 0):.2f} fps ({info.get('codec')}, read with {info.get('decoder')})."
    ]
    if any(r["random_weights"] for r in results):
        status.append("⚠️ Models marked *random weights* have no trained weights on disk: their labels show that the "
                      "pipeline runs, not what the video contains.")
    status.extend(f"- {note}" for note in notes)
    status.extend(f"- {note}" for note in [browser_note(path)] if note)  # the player shows a preview
    return result, topk_cards_html(results), gallery, "\n\n".join(status)


def models_info(state: AppState) -> tuple[dict[str, Any], str]:
    """Every zoo model with where its weights would come from, and the cards of the defaults."""
    from uniformer.zoo import get_entry

    rows = []
    loaded = {m.name for m in state.loaded_models()}
    for _label, name in state.model_choices():
        entry = get_entry(name)
        w = state.resolve_weights(name)
        rows.append({
            "name": name, "family": entry.family, "dataset": entry.dataset, "kind": entry.kind,
            "weights": w.source, "default": name in state.default_models, "loaded": name in loaded,
            "frames": entry.protocol.num_frames, "crop": entry.protocol.crop_size,
            "views": f"{entry.protocol.num_clips}x{entry.protocol.num_crops}",
        })
    cards = ["## Default models", ""]
    for name in state.default_models:
        w = state.resolve_weights(name)
        cards.append(get_entry(name).card())
        cards.append(f"- in this app: {w.describe()}")
        cards.append("")
    with_weights = [r["name"] for r in rows if r["weights"] in ("bundled", "hub cache") and not r["default"]]
    cards.append("## Other models with weights on disk")
    cards.append(", ".join(f"`{n}`" for n in with_weights) if with_weights else
                 "None. Published weights found in the local Hugging Face cache appear here "
                 "(download them once with `python -c \"from uniformer.zoo import fetch_weights; "
                 "fetch_weights('NAME')\"`).")
    payload = {"device": str(state.device), "default_models": list(state.default_models), "models": rows}
    return payload, "\n".join(cards)


predict_endpoint = friendly("Prediction")(predict)
models_endpoint = friendly("Listing models")(models_info)
