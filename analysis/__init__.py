"""Analysis of video transformers: attention maps, redundancy metrics, figures, attributions.

Modules (import the ones you need; plotting libraries load only with ``views``/``efficiency``):

- ``analysis.attention``   ``extract(model, x) -> AttentionRecord`` (logits + named maps)
- ``analysis.metrics``     locality / attention distance / entropy per layer and head
- ``analysis.views``       plotly (browser) and matplotlib (files) figures from maps
- ``analysis.attribution`` CAM, Grad-CAM, attention rollout, captum attributions
- ``analysis.efficiency``  published accuracy vs GFLOPs next to this project's measurements
- ``analysis.report``      ``python -m analysis.report VIDEO --model NAME --out DIR``
- ``analysis.redundancy``  per-axis locality over many clips with 95 % intervals (CLI too)
- ``analysis.intervention`` ``local_attention(model, layers)``: attention restricted to the neighbourhood
- ``analysis.local_mask``  accuracy drop with the first/middle/last third of attention masked (CLI)
- ``analysis.inputs``      model and test-view loading shared by the CLIs

Depends on ``uniformer`` only; nothing here imports the app.
"""
from analysis.attention import AnalysisError, AttentionRecord, LayerInfo, anchor_attention, extract

__all__ = ["AnalysisError", "AttentionRecord", "LayerInfo", "anchor_attention", "extract"]
