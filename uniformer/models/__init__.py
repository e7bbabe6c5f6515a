"""Model families. Importing this package registers every zoo entry with timm.

``FAMILIES`` maps a family name to its model class and checkpoint filter (``filter(state_dict,
model) -> state_dict``, the family's key conversion); ``uniformer.zoo.register_family`` turns
each zoo entry of that family into a timm constructor, so after ``import uniformer``
``timm.create_model('uniformer_small_k400_16x8', pretrained=True)`` works.
"""
from uniformer.models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, unwrap_state_dict
from uniformer.models.timesformer import TimeSformer
from uniformer.models.timesformer import checkpoint_filter_fn as timesformer_filter_fn
from uniformer.models.uniformer import UniFormer
from uniformer.models.uniformer import checkpoint_filter_fn as uniformer_filter_fn

FAMILIES = {
    "uniformer": (UniFormer, uniformer_filter_fn),
    "timesformer": (TimeSformer, timesformer_filter_fn),
}

__all__ = [
    "FAMILIES",
    "CheckpointError",
    "TimeSformer",
    "UniFormer",
    "load_checkpoint",
    "read_checkpoint",
    "timesformer_filter_fn",
    "uniformer_filter_fn",
    "unwrap_state_dict",
]


def _register_families() -> None:
    from uniformer import zoo

    for family, (model_cls, filter_fn) in FAMILIES.items():
        zoo.register_family(family, model_cls, filter_fn)


_register_families()
