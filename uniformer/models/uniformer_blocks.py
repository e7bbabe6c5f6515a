"""The blocks of UniFormer (``uniformer.models.uniformer`` assembles them), channels-last 3D end to end.

Paper Eq. 1-3 map to code as the model file's docstring says: ``pos_embed`` is the DPE, ``LocalBlock``
the local MHRA (``conv2(attn(conv1(BN(x))))``), ``GlobalBlock`` / ``SplitGlobalBlock`` the global
MHRA, ``Mlp`` the FFN.

Memory layout. Every block accepts ``(B, C, T, H, W)`` in either layout and returns the layout it
got, with the same values. In ``torch.channels_last_3d`` a map *is* the token matrix
``(B, T, H, W, C)`` in memory, so the token views the blocks need are free:

* ``PatchEmbed3d`` normalises the conv output over channels on the ``(B, T', H', W', C)`` view and
  returns it permuted back, without a copy (the official code's ``.contiguous()`` here turned every
  stage back to the default layout, and residual adds then mixed layouts). ``UniFormer._trunk``
  makes that copy only for a default-layout clip, so that path stays the official one bit for bit.
* Pointwise (1x1x1) convolutions on a channels-last map run as one GEMM on the token view
  (:func:`pointwise`): the same weights, the same sum, but ATen's channels-last 1x1x1 Conv3d takes
  about 4x the time of that GEMM on CPU. Depthwise 3x3x3 / 5x5x5 convolutions are about 4x faster in
  channels-last than in the default layout (oneDNN), BatchNorm and the adds keep the layout.
* ``GlobalBlock`` flattens ``(B, C, T, H, W)`` to tokens ``(B, L, C)`` and back: both are views in
  channels-last.

Module names and parameter order are the official ones (state-dict keys unchanged).
"""
from __future__ import annotations

import copy
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from uniformer.models.layers import Attention

__all__ = ["Mlp", "PatchEmbed3d", "LocalBlock", "GlobalBlock", "SplitGlobalBlock", "is_channels_last",
           "pointwise"]

_block_norm = partial(nn.LayerNorm, eps=1e-6)


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 5-D map stored as ``(B, T, H, W, C)`` (``torch.channels_last_3d``), not the default."""
    return x.ndim == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 4, 1)  # (B, C, T, H, W) -> (B, T, H, W, C); a view of a channels-last map


def _from_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 4, 1, 2, 3)  # back to (B, C, T, H, W), channels-last strides


def _linear_of(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1x1 conv applied to tokens ``(..., C)`` as a GEMM (weight ``(out, in, 1, 1, 1)`` seen as ``(out, in)``)."""
    return F.linear(x, conv.weight.reshape(conv.out_channels, conv.in_channels), conv.bias)


def pointwise(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a 1x1x1 ``conv``; on a channels-last map, one GEMM on its token view (same layout out)."""
    if is_channels_last(x):
        return _from_tokens(_linear_of(conv, _to_tokens(x)))
    return conv(x)


class Mlp(nn.Module):
    """FFN: fc1 -> GELU -> dropout -> fc2 -> dropout; pointwise 1x1x1 convs when ``conv=True``."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0, conv: bool = False) -> None:
        super().__init__()
        layer = partial(nn.Conv3d, kernel_size=1) if conv else nn.Linear
        self.conv = conv
        self.fc1 = layer(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = layer(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv and is_channels_last(x):  # both convs as GEMMs on one token view
            t = self.drop(self.act(_linear_of(self.fc1, _to_tokens(x))))
            return _from_tokens(self.drop(_linear_of(self.fc2, t)))
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class PatchEmbed3d(nn.Module):
    """Strided Conv3d then LayerNorm over channels; the output is a channels-last ``(B, C, T, H, W)`` view.

    ``norm`` is registered before ``proj`` only to reproduce the official state-dict key order.
    The LayerNorm keeps PyTorch's default eps (1e-5), unlike the block norms (1e-6).
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        kernel_size: tuple[int, int, int],
        stride: tuple[int, int, int],
        padding: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # LayerNorm over C of the (B, T, H, W, C) view: a contiguous result, returned as a permuted view
        return _from_tokens(self.norm(_to_tokens(self.proj(x))))


def _dpe(dim: int) -> nn.Conv3d:
    """Dynamic position embedding: depthwise 3x3x3 conv (added residually by the blocks)."""
    return nn.Conv3d(dim, dim, 3, padding=1, groups=dim)


class LocalBlock(nn.Module):
    """Local UniFormer block (official ``CBlock``): DPE, local MHRA, conv FFN, BatchNorm."""

    def __init__(
        self, dim: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.pos_embed = _dpe(dim)
        self.norm1 = nn.BatchNorm3d(dim)
        self.conv1 = nn.Conv3d(dim, dim, 1)  # V: token context encoding
        self.conv2 = nn.Conv3d(dim, dim, 1)  # U: head fusion
        self.attn = nn.Conv3d(dim, dim, 5, padding=2, groups=dim)  # A^local, one kernel per channel
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.BatchNorm3d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop, conv=True)

    @property
    def local_affinity(self) -> torch.Tensor:
        """The learned 5x5x5 affinity ``(C, 1, 5, 5, 5)``; entry (dt, dh, dw) weights offset (-2..2)."""
        return self.attn.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(pointwise(self.conv2, self.attn(pointwise(self.conv1, self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class GlobalBlock(nn.Module):
    """Global UniFormer block (official ``SABlock``): DPE, MHSA over all T*H*W tokens, MLP."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.pos_embed = _dpe(dim)
        self.norm1 = _block_norm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = _block_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        B, C, T, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, L, C), token order (t, h, w); a view when channels-last
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.transpose(1, 2).reshape(B, C, T, H, W)  # a channels-last view of the tokens


class SplitGlobalBlock(GlobalBlock):
    """Divided attention (official ``SplitSABlock``, ``split=True``): temporal, then spatial.

    Temporal attention runs over T for each spatial site, batch layout ``(B*H*W, T, C)``; spatial
    attention runs over H*W for each frame, batch layout ``(B*T, H*W, C)``. As in the official
    code, the spatial branch is added to the DPE output, not to the temporal result, so the
    temporal branch reaches the output only through the spatial attention's input.
    """

    def __init__(self, dim: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(dim, *args, **kwargs)
        self.t_norm = _block_norm(dim)
        self.t_attn = copy.deepcopy(self.attn)  # same settings as the spatial attention
        for m in self.t_attn.modules():  # ...but its own initial weights
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        # official parameter order: pos_embed, t_norm, t_attn, norm1, attn, norm2, mlp
        first = ("pos_embed", "t_norm", "t_attn")
        self._modules = {k: self._modules[k] for k in first} | {
            k: v for k, v in self._modules.items() if k not in first}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        B, C, T, H, W = x.shape
        S = H * W
        t = x.reshape(B, C, T, S).permute(0, 3, 2, 1).reshape(B * S, T, C)
        t = t + self.drop_path(self.t_attn(self.t_norm(t)))
        s = t.reshape(B, S, T, C).permute(0, 2, 1, 3).reshape(B * T, S, C)
        residual = x.reshape(B, C, T, S).permute(0, 2, 3, 1).reshape(B * T, S, C)  # a view when channels-last
        s = residual + self.drop_path(self.attn(self.norm1(s)))
        s = s.reshape(B, T * S, C)
        s = s + self.drop_path(self.mlp(self.norm2(s)))
        return s.transpose(1, 2).reshape(B, C, T, H, W)
