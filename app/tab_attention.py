"""Attention tab: what one layer of a model does on the clip.

One extraction (``analysis.attention.extract``) per (model, clip) is cached in ``state.records``;
the layer slider, head choice and anchor only re-read it, so they answer in well under a second
even for full-size models. The clip is the model's test protocol reduced to one view (the centre
clip, centre crop), decoded through the same cache as the predict tab.

Views of a layer:

- UniFormer local layers: the learned 5×5×5 affinity kernels (channel-mean |w| and the strongest
  channels, or one chosen channel);
- UniFormer global layers and every TimeSformer layer: the attention of an anchor token picked on
  a frame (click, or the frame / row / column sliders), laid over the frames, for one head or the
  mean over heads;
- whole-model views: attention rollout (TimeSformer), CAM and Grad-CAM (UniFormer), occlusion
  (any model; a handful of extra forward passes).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from app.common import Progress, friendly, no_progress
from app.state import AppState, LoadedModel
from uniformer.cost import request_cost, run_cost
from uniformer.errors import UniformerLabError

VIEW_ATTENTION = "layer: attention / kernels"
VIEW_ROLLOUT = "attention rollout (TimeSformer)"
VIEW_CAM = "CAM (UniFormer)"
VIEW_GRADCAM = "Grad-CAM (UniFormer)"
VIEW_OCCLUSION = "occlusion (8 forward passes)"
VIEWS = [VIEW_ATTENTION, VIEW_ROLLOUT, VIEW_CAM, VIEW_GRADCAM, VIEW_OCCLUSION]
HEAD_AVERAGE = "average"
ANCHOR_SIDE = 224   # the anchor picker is drawn at this size whatever the crop size
MAX_FRAMES = 8      # frames shown
PANEL = 160         # px per frame (issue 15.5: at least 160 px, so a 14×14 token grid stays readable)
COLUMNS = 4         # frames per line: 4 × 160 px + colour bar fit the page's right column at 1400 px
WHOLE_MODEL = {VIEW_ROLLOUT, VIEW_CAM, VIEW_GRADCAM, VIEW_OCCLUSION}  # no layer, head or anchor


# ------------------------------------------------------------------------------ structure
def num_heads(record: Any, name: str) -> int:
    """Heads of a map (channels for a local affinity kernel)."""
    kind = record.layers[name].kind
    shape = record.maps[name].shape
    if kind == "local_affinity":
        return int(shape[0])
    return int(shape[1] if kind == "joint" else shape[2])


def describe_layer(name: str, info: Any, heads: int) -> str:
    what = {"local_affinity": "local affinity (learned 5×5×5 kernel per channel)",
            "joint": "global self-attention over all space-time tokens",
            "spatial": "spatial attention within each frame",
            "temporal": "temporal attention across frames at each position"}[info.kind]
    where = f"stage {info.stage}, block {info.block}" if info.stage else f"block {info.block}"
    unit = "channels" if info.kind == "local_affinity" else "heads"
    grid = "×".join(str(g) for g in info.grid)
    return f"`{name}` — {where}: {what}; token grid {grid} (T×H×W), {heads} {unit}"


def parse_head(head: Any, heads: int) -> int | None:
    """``"average"`` / None / -1 → None (mean over heads); else a head index in range."""
    if head is None or str(head).strip().lower() in ("", HEAD_AVERAGE, "mean", "avg", "-1"):
        return None
    try:
        h = int(str(head).split()[-1])
    except ValueError:
        raise UniformerLabError(f"Head must be '{HEAD_AVERAGE}' or a number, not '{head}'.") from None
    if not 0 <= h < heads:
        raise UniformerLabError(f"This layer has {heads} heads/channels; choose 0 to {heads - 1} or '{HEAD_AVERAGE}'.")
    return h


# ------------------------------------------------------------------------------ extraction
_MAP_BYTES: dict[tuple, int] = {}


def attention_map_bytes(name: str, input_shape: tuple[int, ...]) -> int:
    """Bytes the extraction would keep for zoo architecture ``name`` on ``input_shape``: the same
    extraction run on the ``meta`` device (shapes only, a fraction of a second), cached."""
    from analysis.attention import extract
    from uniformer.zoo import create_model

    key = (name, tuple(input_shape))
    if key not in _MAP_BYTES:
        model = create_model(name, device="meta")
        record = extract(model, torch.empty(*input_shape, device="meta"))
        _MAP_BYTES[key] = int(sum(m.numel() * m.element_size() for m in record.maps.values()))
    return _MAP_BYTES[key]


def check_attention_memory(state: AppState, name: str, input_shape: tuple[int, ...] | None = None) -> None:
    """Refuse an extraction whose maps exceed ``max_attention_gb``; ``input_shape`` defaults to one
    view of the model's protocol, so this runs before the model is loaded (part of a request's cost)."""
    from uniformer.zoo import get_entry

    shape = input_shape or (1, *get_entry(name).input_size)
    need = attention_map_bytes(name, tuple(shape)) / 2**30
    budget = state.config.max_attention_gb
    if need > budget:
        raise UniformerLabError(
            f"The attention maps of {name} on one clip take {need:.1f} GB, more than this app keeps "
            f"({budget:g} GB); choose a model with fewer frames or a lower resolution.")


def get_record(state: AppState, lm: LoadedModel, video: str,
               progress: Progress | None = None) -> tuple[dict[str, Any], bool]:
    """The cached extraction of ``lm`` on the one-view clip of ``video``: a dict with the
    record (maps on CPU), the input ``x``, display frames and timings."""
    from analysis.attention import extract
    from analysis.views import frames_from_input

    progress = progress or no_progress
    predictor = lm.with_views((1, 1))
    protocol = predictor.protocol
    progress(0.1, desc=f"Decoding the video for {lm.name}")
    clip, clip_cached = state.prepare(video, protocol)
    key = ("record", lm.uid, clip.key)

    x = clip.prepared.views[:1]
    check_attention_memory(state, lm.name, tuple(x.shape))

    def build() -> dict[str, Any]:
        progress(0.3, desc=f"Running {lm.label} with attention capture")
        with lm.lock:
            t0 = time.perf_counter()
            record = extract(lm.model, x.to(lm.device))
            seconds = time.perf_counter() - t0
        record.maps = {k: v.detach().cpu() for k, v in record.maps.items()}
        record.logits = record.logits.detach().float().cpu()
        frames = frames_from_input(x, protocol.mean, protocol.std, bgr=protocol.bgr)
        return {"record": record, "x": x, "frames": frames, "extract_s": seconds, "protocol": protocol,
                "frame_indices": [int(i) for i in clip.prepared.clips.plan.clips[0]], "extras": {},
                "clip_cached": clip_cached}

    return state.records.get_or_create(key, build)


def _extra(cache: dict[str, Any], lm: LoadedModel, what: str, fn: Callable[[], Any]) -> Any:
    """Whole-model views (CAM, rollout, occlusion) cached with the record."""
    if what not in cache["extras"]:
        with lm.lock:
            cache["extras"][what] = fn()
    return cache["extras"][what]


# ------------------------------------------------------------------------------ anchor
def anchor_pixels(frame: Any, row_pct: Any, col_pct: Any, num_frames: int, size: int) -> tuple[int, float, float]:
    """(input frame, y px, x px) from the controls; row/column are percent of height/width."""
    f = 0 if frame is None else int(round(float(frame)))
    r = 50.0 if row_pct is None else float(row_pct)
    c = 50.0 if col_pct is None else float(col_pct)
    f = min(max(f, 0), num_frames - 1)
    y = min(min(max(r, 0.0), 100.0) / 100.0 * size, size - 1e-3)
    x = min(min(max(c, 0.0), 100.0) / 100.0 * size, size - 1e-3)
    return f, y, x


def anchor_on_grid(frame: int, y: float, x: float, num_frames: int, size: int,
                   grid: tuple[int, int, int]) -> tuple[int, int, int]:
    T, H, W = grid
    return (min(frame * T // num_frames, T - 1), min(int(y * H / size), H - 1), min(int(x * W / size), W - 1))


def anchor_image(frames: np.ndarray, frame: int, anchor: tuple[int, int, int] | None,
                 grid: tuple[int, int, int] | None) -> np.ndarray:
    """The anchor frame at ``ANCHOR_SIDE`` px with the anchor token outlined in green."""
    img = torch.from_numpy(np.ascontiguousarray(frames[frame])).permute(2, 0, 1)[None].float()
    img = torch.nn.functional.interpolate(img, size=(ANCHOR_SIDE, ANCHOR_SIDE), mode="bilinear", align_corners=False)
    out = (img[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy().copy()
    if anchor is not None and grid is not None:
        _, H, W = grid
        _, h, w = anchor
        y0, y1 = int(h * ANCHOR_SIDE / H), int((h + 1) * ANCHOR_SIDE / H) - 1
        x0, x1 = int(w * ANCHOR_SIDE / W), int((w + 1) * ANCHOR_SIDE / W) - 1
        green = np.array([0, 200, 83], dtype=np.uint8)
        for t in range(2):
            out[max(y0 + t, 0), x0:x1 + 1] = green
            out[min(y1 - t, ANCHOR_SIDE - 1), x0:x1 + 1] = green
            out[y0:y1 + 1, max(x0 + t, 0)] = green
            out[y0:y1 + 1, min(x1 - t, ANCHOR_SIDE - 1)] = green
    return out


def click_to_anchor(index: Any) -> tuple[float, float]:
    """A click on the anchor picker (``(x, y)`` px of the ``ANCHOR_SIDE`` image) → (row %, column %)."""
    try:
        x, y = (float(v) for v in index)
    except (TypeError, ValueError):
        raise UniformerLabError("Click inside the frame to place the anchor.") from None
    scale = 100.0 / (ANCHOR_SIDE - 1)
    return round(min(max(y * scale, 0.0), 100.0), 1), round(min(max(x * scale, 0.0), 100.0), 1)


# ------------------------------------------------------------------------------ handler
def attention(
    state: AppState,
    video: Any,
    model: str | None = None,
    layer: Any = 0,
    head: Any = HEAD_AVERAGE,
    view: str | None = VIEW_ATTENTION,
    frame: Any = None,
    row: Any = 50.0,
    col: Any = 50.0,
    progress: Progress | None = None,
) -> tuple[Any, str, np.ndarray, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One layer (or a whole-model view) of ``model`` on ``video``.

    Returns ``(figure, info_markdown, anchor_image, layer_update, head_update, frame_update)``;
    the three updates resize the layer slider, head choice and frame slider for this model.
    """
    import gradio as gr

    from analysis import attribution as attr
    from analysis import views

    progress = progress or no_progress
    path = state.check_path(video, what="video")
    name = model or state.default_models[0]
    check_attention_memory(state, name)  # the request's cost: attention-map memory, then GFLOPs
    state.budget.admit(request_cost([run_cost(name, (1, 1), passes=9 if view == VIEW_OCCLUSION else 1)]))
    t_start = time.perf_counter()
    progress(0.0, desc=f"Loading {name}")
    lm, _ = state.get_model(name)
    cache, cached = get_record(state, lm, path, progress)
    record, frames, x = cache["record"], cache["frames"], cache["x"]
    names = list(record.layers)
    li = 0 if layer is None else int(round(float(layer)))
    li = min(max(li, 0), len(names) - 1)
    lname = names[li]
    info = record.layers[lname]
    heads = num_heads(record, lname)
    h = parse_head(head, heads)
    T_in, size = frames.shape[0], frames.shape[1]
    f, y, xx = anchor_pixels(frame if frame is not None else T_in // 2, row, col, T_in, size)
    grid = info.grid
    anchor = anchor_on_grid(f, y, xx, T_in, size, grid)
    view = view or VIEW_ATTENTION
    shown = views.even_frames(T_in, MAX_FRAMES)
    progress(0.8, desc="Drawing")

    if view == VIEW_ATTENTION:
        if info.kind == "local_affinity":
            which = f"channel {h}" if h is not None else "strongest channels"
            title = f"{lname}: learned 5×5×5 affinity ({which})"
            fig = views.kernels_plotly(record.maps[lname], channels=[h] if h is not None else None, title=title)
            what = "Kernel weights of each channel by temporal offset dt (rows: channels; first row: mean |w|)."
        else:
            ov = views.anchor_overlay(record, frames, anchor, names=[lname], head=h, max_frames=MAX_FRAMES)
            fig = _overlay_figure(ov)
            what = (f"Where the anchor token (t={anchor[0]}, h={anchor[1]}, w={anchor[2]}) of this layer's grid looks"
                    f" ({'head ' + str(h) if h is not None else 'mean over heads'}); green box: the anchor.")
    elif view == VIEW_ROLLOUT:
        ro = _extra(cache, lm, "rollout", lambda: attr.attention_rollout(record))
        ov = views.Overlay(frames=frames, rows={"rollout from cls": ro.patches.numpy()}, frame_ids=shown,
                           title=f"Attention rollout from the class token (cls keeps {ro.cls:.1%})",
                           value_label="relevance")
        fig, what = _overlay_figure(ov), "Relevance of each input patch for the class token, through all blocks."
    elif view in (VIEW_CAM, VIEW_GRADCAM):
        fn = attr.class_activation_map if view == VIEW_CAM else attr.grad_cam
        cm = _extra(cache, lm, view, lambda: fn(lm.model, x.to(lm.device)))
        label = _label(lm, int(cm.target[0]))
        ov = views.Overlay(frames=frames, rows={cm.method: cm.heat[0].detach().cpu().numpy()}, frame_ids=shown,
                           title=f"{cm.method} for '{label}' (last stage-4 block)", value_label="activation")
        fig, what = _overlay_figure(ov), f"{cm.method} of the predicted class '{label}'."
    elif view == VIEW_OCCLUSION:
        T, S = x.shape[2], x.shape[-1]
        window = (max(1, T // 2), max(1, S // 2), max(1, S // 2))
        a = _extra(cache, lm, "occlusion", lambda: attr.occlusion(lm.model, x.to(lm.device), window=window))
        heat = torch.nn.functional.avg_pool3d(a.heat.detach().cpu()[:, None].float(), (1, 8, 8), ceil_mode=True)[0, 0]
        label = _label(lm, int(a.target[0]))
        ov = views.Overlay(frames=frames, rows={a.method: heat.numpy()}, frame_ids=shown,
                           title=f"Occlusion for '{label}' (window {window[0]}×{window[1]}×{window[2]})",
                           value_label="logit drop")
        fig = _overlay_figure(ov)
        what = "Drop of the predicted class's logit when each space-time window is greyed out."
    else:
        raise UniformerLabError(f"Unknown view '{view}'; choose one of: {', '.join(VIEWS)}.")

    probs = record.logits.softmax(-1)[0]
    top = int(probs.argmax())
    warn = ("\n\n⚠️ **Random weights**: this model has no trained weights on disk, so its attention is close to "
            "uniform and says nothing about the paper's claims." if lm.weights.random else "")
    header = (f"**{lm.label}** — {view}" if view in WHOLE_MODEL else
              f"**{lm.label}** — layer {li + 1} of {len(names)}: {describe_layer(lname, info, heads)}")
    md = (
        f"{header}\n\n"
        f"{what}\n\n"
        f"Clip: frames {cache['frame_indices']} (one view, centre crop {size} px); top-1 of this view: "
        f"{_label(lm, top)} ({float(probs[top]):.1%}). Extraction {cache['extract_s']:.2f} s"
        f"{' (cached)' if cached else ''}; this view {time.perf_counter() - t_start:.2f} s.{warn}"
    )
    progress(1.0, desc="Done")
    picker = anchor_image(frames, f, anchor if view == VIEW_ATTENTION and info.kind != "local_affinity" else None, grid)
    head_choices = [HEAD_AVERAGE] + [str(i) for i in range(heads)]
    return (
        fig,
        md,
        picker,
        gr.update(maximum=len(names) - 1, value=li, label=f"Layer (0–{len(names) - 1}): {lname}"),
        gr.update(choices=head_choices, value=HEAD_AVERAGE if h is None else str(h),
                  label="Channel" if info.kind == "local_affinity" else "Head"),
        gr.update(maximum=T_in - 1, value=f),
    )


def _overlay_figure(ov: Any) -> Any:
    """Frames-over-heat figure sized for the page: ``PANEL`` px per frame, ``COLUMNS`` per line."""
    from analysis import views

    return views.overlay_plotly(ov, panel=PANEL, columns=COLUMNS)


def controls(state: AppState, model: str | None, view: str | None, layer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Which controls apply: ``(layer/head box, anchor box)`` visibility updates. Whole-model views
    use neither; a local-affinity layer has channels but no anchor. No forward pass."""
    import gradio as gr

    from analysis.attention import map_names

    lm, _ = state.get_model(model or state.default_models[0])
    names = map_names(lm.model)
    li = min(max(0 if layer is None else int(round(float(layer))), 0), len(names) - 1)
    per_layer = (view or VIEW_ATTENTION) not in WHOLE_MODEL
    anchor = per_layer and not names[li].startswith("local_affinity")
    return gr.update(visible=per_layer), gr.update(visible=anchor)


def _label(lm: LoadedModel, i: int) -> str:
    names = lm.predictor.label_names
    return names[i] if i < len(names) else f"class {i}"


def model_layers(state: AppState, model: str | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Resize the layer slider, head choice and frame slider when the model changes (no forward pass)."""
    import gradio as gr

    from analysis.attention import map_names

    name = model or state.default_models[0]
    lm, _ = state.get_model(name)
    names = map_names(lm.model)
    T = lm.entry.protocol.num_frames
    return (
        gr.update(maximum=max(len(names) - 1, 0), value=0, label=f"Layer (0–{len(names) - 1}): {names[0]}"),
        gr.update(choices=[HEAD_AVERAGE], value=HEAD_AVERAGE),
        gr.update(maximum=T - 1, value=T // 2),
    )


attention_endpoint = friendly("Attention view")(attention)
model_layers_endpoint = friendly("Loading the model")(model_layers)
controls_endpoint = friendly("Attention controls")(controls)
