"""Blocks shared by both model families.

``Attention`` is the one place where global self-attention is computed. Its normal path is
``scaled_dot_product_attention`` (fused, never builds the L×L map); setting ``capture = True``
switches that module to the explicit softmax path and keeps the probabilities in ``attn_map``.
The analysis package flips the switch through ``attention_capture``; the normal forward never
pays for it. An optional boolean ``mask`` ``(queries, keys)`` (True = the key may be attended) restricts
each row to its allowed keys, softmax renormalised over them, on both paths; it is ``None`` unless
an intervention (``analysis.intervention.local_attention``) sets it, and then nothing changes.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with the official packed ``qkv`` / ``proj`` layout.

    The qkv output is split as (3, heads, head_dim): q for all heads first, then k, then v.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.capture = False
        self.attn_map: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None  # bool (queries, keys); every row needs one True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.capture:
            logits = (q @ k.transpose(-2, -1)) * self.scale
            if self.mask is not None:
                logits = logits.masked_fill(~self.mask, float("-inf"))
            attn = logits.softmax(dim=-1)
            self.attn_map = attn.detach()
            x = self.attn_drop(attn) @ v
        else:
            drop = self.attn_drop.p if self.training else 0.0
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask, dropout_p=drop, scale=self.scale)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


def attention_modules(model: nn.Module) -> Iterator[tuple[str, Attention]]:
    """All ``Attention`` modules of a model with their qualified names, in forward order."""
    for name, module in model.named_modules():
        if isinstance(module, Attention):
            yield name, module


@contextmanager
def attention_capture(model: nn.Module) -> Iterator[dict[str, Attention]]:
    """Materialise attention maps inside the block; restores the fast path on exit.

    Yields ``{qualified_name: module}``; after a forward each module's ``attn_map`` holds
    ``(batch, heads, queries, keys)`` probabilities. Maps are released on exit.
    """
    modules = dict(attention_modules(model))
    for m in modules.values():
        m.capture = True
    try:
        yield modules
    finally:
        for m in modules.values():
            m.capture = False
            m.attn_map = None
