"""Model families. Importing this package registers every released checkpoint with timm.

The model files register their names the way timm's own do (``default_cfgs`` and
``@register_model`` next to the classes), so after ``import uniformer.models``
``timm.create_model('uniformer_small_k400_16x8', pretrained=True)`` works.
:mod:`uniformer.models.family` describes each family once (``FAMILIES``, :func:`get_family`);
``get_family(name).build(num_classes=..., **arch)`` is the factory the trainer uses.
This package never imports ``uniformer.zoo`` (the zoo imports it).
"""
from uniformer.models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, unwrap_state_dict
from uniformer.models.family import FAMILIES, TIMESFORMER, UNIFORMER, ModelFamily, family_names, get_family
from uniformer.models.timesformer import TimeSformer
from uniformer.models.timesformer import checkpoint_filter_fn as timesformer_filter_fn
from uniformer.models.uniformer import UniFormer
from uniformer.models.uniformer import checkpoint_filter_fn as uniformer_filter_fn

__all__ = [
    "FAMILIES",
    "TIMESFORMER",
    "UNIFORMER",
    "CheckpointError",
    "ModelFamily",
    "TimeSformer",
    "UniFormer",
    "family_names",
    "get_family",
    "load_checkpoint",
    "read_checkpoint",
    "timesformer_filter_fn",
    "uniformer_filter_fn",
    "unwrap_state_dict",
]
