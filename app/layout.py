"""The page: ``build_app(state) -> gr.Blocks`` with the four tabs and their named API endpoints.

Layout only: every handler lives in a ``tab_*.py`` module as a plain function of
``(state, inputs...)``; here they are bound to the state and to components. Every event that
runs a model is priced and admitted by ``state.budget`` (``app/budget.py``): refused over the
per-request GFLOPs budget, else run in the light or heavy lane (at most ``config.concurrency_limit``
heavy runs at once whatever the tab, light ones beside them), refused as busy beyond
``config.queue_max_size`` waiting, and stopped when its client goes away.

Named endpoints (``gradio_client``): ``/predict``, ``/models``, ``/attention``,
``/redundancy``, ``/efficiency``, ``/timeline``, ``/timeline_window``.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from app import tab_attention, tab_efficiency, tab_predict, tab_redundancy, tab_timeline
from app.budget import client_gone
from app.common import CSS, ClampedSlider, error_box
from app.preview import PLAYER_HEAD, player_update
from app.state import CHECKPOINT_SUFFIXES, THUMB_FORMAT, AppConfig, AppState, iter_clip_examples
from app.uploads import upload_middleware
from uniformer.assets import ASSETS_DIR
from uniformer.device import PRECISIONS
from uniformer.models.family import TIMESFORMER, UNIFORMER
from uniformer.zoo import get_entry

HEAVY = "model"  # concurrency id shared by every event that runs a model (through app/budget.py's lanes)
MISC = "misc"    # events that only load a model (the layer list of the chosen model)


def make_state(**overrides: Any) -> AppState:
    """An ``AppState`` from ``AppConfig`` keyword overrides (lists become tuples)."""
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    state = AppState(AppConfig(**cfg))
    if state.config.preload:
        state.preload_defaults()
    return state


def launch_kwargs(state: AppState) -> dict[str, Any]:
    """Arguments for ``demo.launch`` that enforce the upload caps (per kind, while streaming:
    ``app/uploads.py``) and file-access rules."""
    cfg = state.config
    return dict(
        max_file_size=int(cfg.max_upload_mb * 2**20),
        app_kwargs={"middleware": [upload_middleware(cfg.max_video_mb, cfg.max_checkpoint_mb, CHECKPOINT_SUFFIXES)]},
        allowed_paths=[str(ASSETS_DIR), *state.config.extra_allowed_dirs],
        show_error=False,  # unexpected errors become one line (app.common.friendly), never a traceback
        footer_links=["api", "settings"],
        css=CSS,
        head=PLAYER_HEAD,  # no "Video not playable" toast over the cards: app.preview
    )


def _header(state: AppState) -> str:
    loaded = {m.name: m for m in state.loaded_models()}
    parts = []
    any_random = False
    for name in state.default_models:
        w = loaded[name].weights if name in loaded else state.resolve_weights(name)
        any_random |= w.random
        parts.append(f"`{name}`" + (" (**random weights**)" if w.random else f" ({w.source})"))
    text = (
        "# UniFormer Lab\n"
        "Video classification with UniFormer (local affinity early, global attention late) next to a TimeSformer "
        f"baseline. Device: **{state.device}**. Default models: {', '.join(parts)}."
    )
    if any_random:
        text += ("\n\n<div class='ul-banner'>No trained weights were found on disk for the default models, so they "
                 "run with <b>random initialisation</b>: predictions and attention show the pipeline working, not "
                 "what the video contains. Bundled small models in <code>assets/checkpoints/</code> or published "
                 "weights in the Hugging Face cache are picked up automatically.</div>")
    return text


def build_app(state: AppState | None = None, **overrides: Any) -> gr.Blocks:
    """The whole app. ``state=None`` builds one from ``AppConfig`` overrides, e.g.
    ``build_app(default_models=["tiny_model"], views=(1, 1))``."""
    from analysis.attention import map_names

    if state is None:
        state = make_state(**overrides)
    elif overrides:
        raise TypeError("Pass either a state or AppConfig overrides, not both.")
    cfg = state.config
    choices = state.model_choices()
    first = state.default_models[0]
    lm0, _ = state.get_model(first)
    n_layers = len(map_names(lm0.model))
    n_frames = lm0.entry.protocol.num_frames

    # ---------------------------------------------------------------- handlers bound to state
    def predict(video, models, views, checkpoint, checkpoint_model, request: gr.Request, precision="fp32",
                progress=gr.Progress()):
        with state.budget.scope(client_gone(demo, request)):  # lanes and cancellation: app/budget.py
            return tab_predict.predict_endpoint(state, video, models, views, checkpoint, checkpoint_model, precision,
                                                progress=progress)

    def models():
        return tab_predict.models_endpoint(state)

    def refresh_choices():
        ch = state.model_choices()
        return gr.update(choices=ch), gr.update(choices=ch), gr.update(choices=ch)

    def attention(video, model, layer, head, view, frame, row, col, request: gr.Request, progress=gr.Progress()):
        with state.budget.scope(client_gone(demo, request)):
            return tab_attention.attention_endpoint(state, video, model, layer, head, view, frame, row, col,
                                                    progress=progress)

    def model_layers(model):
        return tab_attention.model_layers_endpoint(state, model)

    def attn_controls(model, view, layer):
        return tab_attention.controls_endpoint(state, model, view, layer)

    def pick_anchor(evt: gr.SelectData):
        return tab_attention.click_to_anchor(evt.index)

    def redundancy(video, uniformer_model, timesformer_model, request: gr.Request, progress=gr.Progress()):
        with state.budget.scope(client_gone(demo, request)):
            return tab_redundancy.redundancy_endpoint(state, video, uniformer_model, timesformer_model,
                                                      progress=progress)

    def efficiency(dataset, per, latency, request: gr.Request, progress=gr.Progress()):
        with state.budget.scope(client_gone(demo, request)):
            return tab_efficiency.efficiency_endpoint(state, dataset, per, latency, progress=progress)

    def trained_here():
        return tab_efficiency.trained_here_endpoint(state)

    # ---------------------------------------------------------------- page
    with gr.Blocks(title="UniFormer Lab", delete_cache=(1800, 3600), analytics_enabled=False) as demo:
        gr.Markdown(_header(state), elem_id="header")
        with gr.Tabs(elem_id="tabs"):
            # ------------------------------------------------------------ predict
            with gr.Tab("Predict", id="predict", elem_id="tab-predict"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=320):
                        video = gr.Video(label="Video (upload, record with the webcam, or pick an example below)",
                                         sources=["upload", "webcam"], include_audio=True, height=300,
                                         elem_id="video-input")
                        examples = iter_clip_examples()
                        if examples:
                            gr.Examples(examples=[[p] for p in examples], inputs=[video], label="Example clips",
                                        cache_examples=False)
                        model_dd = gr.Dropdown(choices=choices, value=list(state.default_models), multiselect=True,
                                               max_choices=tab_predict.MAX_MODELS, label="Models (side by side)",
                                               elem_id="models-input")
                        views_dd = gr.Dropdown(tab_predict.VIEW_CHOICES, value=f"{cfg.views[0]}x{cfg.views[1]}",
                                               allow_custom_value=True, elem_id="views-input",
                                               label="Views: clips × crops ('protocol' = as the checkpoint was tested)")
                        precision_rb = gr.Radio(list(PRECISIONS), value="fp32", elem_id="precision-input",
                                                label="Precision (fp32 exact; bf16 faster on AMX / AVX-512-BF16 CPUs "
                                                      "and recent GPUs, its accuracy is in the README)")
                        with gr.Accordion("Your own checkpoint (optional)", open=False):
                            ckpt = gr.File(label="Checkpoint (.pth, .pyth, .pt, .safetensors; read safely, no code "
                                                 "runs)",
                                           file_types=list(CHECKPOINT_SUFFIXES), type="filepath")
                            ckpt_arch = gr.Dropdown(choices=choices, value=None, label="Its architecture (zoo model)")
                        predict_btn = gr.Button("Predict", variant="primary", elem_id="predict-btn")
                    with gr.Column(scale=3, min_width=400):
                        status = gr.Markdown(elem_id="predict-status")
                        cards = gr.HTML(elem_id="predict-cards")
                        gallery = gr.Gallery(label="Frames the models saw (one thumbnail per sampled frame)", columns=8,
                                             height=260, object_fit="contain", elem_id="predict-frames",
                                             format=THUMB_FORMAT)
                        with gr.Accordion("Result as JSON (what the /predict API returns)", open=False):
                            result = gr.JSON(elem_id="predict-json")
                with gr.Accordion("Model cards and every available model", open=False):
                    models_btn = gr.Button("Refresh the model list", size="sm")
                    models_md = gr.Markdown()
                    models_json = gr.JSON()
                tab_timeline.build_timeline_ui(  # /timeline, /timeline_window, priced like every model run
                    state, video, choices, dict(concurrency_id=HEAVY, concurrency_limit=state.budget.capacity),
                    guard=lambda request: state.budget.scope(client_gone(demo, request)))

            # ------------------------------------------------------------ attention
            with gr.Tab("Attention", id="attention", elem_id="tab-attention"):
                gr.Markdown("Uses the video chosen in the **Predict** tab. Pick a layer: local UniFormer layers show "
                            "their learned affinity kernels; attention layers show where an anchor token looks "
                            "(click the frame on the left or use the sliders).")
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        attn_model = gr.Dropdown(choices=choices, value=first, label="Model", elem_id="attn-model")
                        attn_view = gr.Radio(tab_attention.VIEWS, value=tab_attention.VIEW_ATTENTION, label="View",
                                             elem_id="attn-view")
                        with gr.Column(elem_id="layer-controls") as layer_box:  # hidden for whole-model views
                            layer = ClampedSlider(0, max(n_layers - 1, 0), step=1, value=0,
                                                  label=f"Layer (0–{n_layers - 1})", elem_id="layer-slider")
                            head = gr.Dropdown([tab_attention.HEAD_AVERAGE], value=tab_attention.HEAD_AVERAGE,
                                               label="Head", allow_custom_value=True, elem_id="head-input")
                        with gr.Column(elem_id="anchor-controls") as anchor_box:  # only for attention maps
                            picker = gr.Image(label="Anchor: click on the frame", interactive=False, height=240,
                                              elem_id="anchor-picker", buttons=[])
                            frame = ClampedSlider(0, max(n_frames - 1, 0), step=1, value=n_frames // 2,
                                                  label="Anchor frame", elem_id="anchor-frame")
                            row = gr.Slider(0, 100, step=1, value=50, label="Anchor row (% of height)",
                                            elem_id="anchor-row")
                            col = gr.Slider(0, 100, step=1, value=50, label="Anchor column (% of width)",
                                            elem_id="anchor-col")
                        attn_btn = gr.Button("Show", variant="primary", elem_id="attention-btn")
                    with gr.Column(scale=3, min_width=500):
                        attn_md = gr.Markdown(elem_id="attention-info")
                        attn_plot = gr.Plot(label="Attention", show_label=False,  # a label forces a 100-px top margin
                                            elem_id="attention-plot")

            # ------------------------------------------------------------ redundancy
            with gr.Tab("Redundancy", id="redundancy", elem_id="tab-redundancy"):
                gr.Markdown("Per-layer locality and attention distance of UniFormer and TimeSformer on the "
                            "Predict tab's video: are shallow layers' global comparisons redundant (mostly local)? "
                            "(the paper's Figure 1 claim)")
                with gr.Row():
                    red_uni = gr.Dropdown(choices=[c for c in choices if get_entry(c[1]).family == UNIFORMER.name],
                                          value=tab_redundancy.default_for_family(state, UNIFORMER.name),
                                          label="UniFormer model")
                    red_ts = gr.Dropdown(choices=[c for c in choices if get_entry(c[1]).family == TIMESFORMER.name],
                                         value=tab_redundancy.default_for_family(state, TIMESFORMER.name),
                                         label="TimeSformer model")
                    red_btn = gr.Button("Measure", variant="primary", elem_id="redundancy-btn")
                red_md = gr.Markdown(elem_id="redundancy-reading")
                red_plot = gr.Plot(label="Redundancy per layer", elem_id="redundancy-plot")
                red_table = gr.Dataframe(headers=tab_redundancy.TABLE_HEADERS, interactive=False, wrap=True,
                                         label="Per layer (head average)", elem_id="redundancy-table")

            # ------------------------------------------------------------ efficiency
            with gr.Tab("Efficiency", id="efficiency", elem_id="tab-efficiency"):
                with gr.Row():
                    eff_ds = gr.Dropdown(tab_efficiency.DATASETS, value="K400", label="Dataset")
                    eff_per = gr.Radio(tab_efficiency.PER_CHOICES, value="per view", label="GFLOPs")
                    eff_lat = gr.Checkbox(value=False, label="measure latency of loaded models now (one forward each)")
                    eff_btn = gr.Button("Update", variant="primary", elem_id="efficiency-btn")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        eff_plot = gr.Plot(label="Top-1 vs GFLOPs (published)", elem_id="efficiency-plot")
                    with gr.Column(scale=2):
                        trained_plot = gr.Plot(label="Trained here (lab ablation)", elem_id="efficiency-trained")
                trained_md = gr.Markdown(elem_id="efficiency-trained-md")  # full width: a table of its own
                eff_md = gr.Markdown(elem_id="efficiency-md")
                eff_table = gr.Dataframe(headers=tab_efficiency.TABLE_HEADERS, interactive=False,
                                         label="All points (click a column header to sort)")

        # ---------------------------------------------------------------- events
        # Model runs wait in app/budget.py's heavy / light lanes, not in Gradio's queue, so that a light
        # request never queues behind heavy ones; the layer-list event keeps Gradio's limit.
        heavy = dict(concurrency_id=HEAVY, concurrency_limit=state.budget.capacity)
        misc = dict(concurrency_id=MISC, concurrency_limit=cfg.concurrency_limit)
        video.upload(player_update, [video], [video, status], api_visibility="private")  # browser preview
        predict_ev = predict_btn.click(predict, [video, model_dd, views_dd, ckpt, ckpt_arch, precision_rb],
                                       [result, cards, gallery, status], api_name="predict", **heavy)
        predict_ev.failure(error_box, None, [status], api_visibility="private")  # the error stays on the page
        models_btn.click(models, None, [models_json, models_md], api_name="models").then(
            refresh_choices, None, [model_dd, ckpt_arch, attn_model], api_visibility="private")

        attn_inputs = [video, attn_model, layer, head, attn_view, frame, row, col]
        attn_outputs = [attn_plot, attn_md, picker, layer, head, frame]
        keep = dict(api_visibility="private")  # failure listeners: the error box replaces the tab's text
        attn_btn.click(attention, attn_inputs, attn_outputs, api_name="attention", **heavy).failure(
            error_box, None, [attn_md], **keep)
        ui = dict(api_visibility="private", trigger_mode="always_last", **heavy)
        for trigger in (layer.release, frame.release, row.release, col.release, head.input, attn_view.input):
            trigger(attention, attn_inputs, attn_outputs, **ui).failure(error_box, None, [attn_md], **keep)
        picker.select(pick_anchor, None, [row, col], api_visibility="private").then(
            attention, attn_inputs, attn_outputs, **ui).failure(error_box, None, [attn_md], **keep)
        attn_model.input(model_layers, [attn_model], [layer, head, frame], api_visibility="private", **misc).failure(
            error_box, None, [attn_md], **keep)
        for trigger in (attn_view.change, layer.change, attn_model.change):  # controls that apply to this view
            trigger(attn_controls, [attn_model, attn_view, layer], [layer_box, anchor_box], api_visibility="private")

        red_btn.click(redundancy, [video, red_uni, red_ts], [red_plot, red_md, red_table], api_name="redundancy",
                      **heavy).failure(error_box, None, [red_md], **keep)
        eff_inputs, eff_outputs = [eff_ds, eff_per, eff_lat], [eff_plot, eff_table, eff_md]
        eff_btn.click(efficiency, eff_inputs, eff_outputs, api_name="efficiency", **heavy).failure(
            error_box, None, [eff_md], **keep)
        for trigger in (eff_ds.input, eff_per.input):
            trigger(efficiency, eff_inputs, eff_outputs, **ui).failure(error_box, None, [eff_md], **keep)
        demo.load(efficiency, eff_inputs, eff_outputs, api_visibility="private", **heavy)
        demo.load(trained_here, None, [trained_plot, trained_md], api_visibility="private")

    demo.queue(default_concurrency_limit=cfg.concurrency_limit, max_size=cfg.queue_max_size)
    demo.lab_state = state  # type: ignore[attr-defined]
    return demo

