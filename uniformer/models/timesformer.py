"""TimeSformer (Bertasius et al., ICML 2021), numerically equivalent to the official model.

Re-implementation of ``VisionTransformer`` from facebookresearch/TimeSformer (commit a5ef29a):
same parameter names, shapes and ``state_dict`` order (so released ``.pyth`` checkpoints load
strictly after the ``model.`` prefix is stripped), same arithmetic order, same quirks. The quirks
are kept on purpose because the released weights were trained with them:

- token order after embedding is ``[cls, patches]`` with patches **space-major, time-minor**:
  patch ``n = h * Wp + w`` of frame ``t`` sits at index ``1 + n * T + t``;
- in a divided block the temporal branch runs first (cls excluded) and goes through the extra
  ``temporal_fc``; the spatial branch then sees the post-temporal patches plus a per-frame copy of
  the *block-input* cls token, and the T cls outputs are averaged;
- inputs whose size / frame count differ from the constructor resize ``pos_embed`` / ``time_embed``
  inside ``forward`` with legacy ``nearest`` interpolation (not ``nearest-exact``).

Input layout is ``(B, C, T, H, W)``; the output is raw logits (the official model never applies
softmax and never calls its dropout-before-head).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from timm.models import generate_default_cfgs, register_model
from torch import nn
from torch.utils.checkpoint import checkpoint

from uniformer.assets import CHECKPOINTS_DIR
from uniformer.errors import CheckpointError
from uniformer.models.checkpoint import head_fits, unwrap_state_dict
from uniformer.models.checkpoint import load_pretrained as _load_pretrained
from uniformer.models.layers import Attention
from uniformer.models.registry import build_video_model, video_cfg

__all__ = [
    "TimeSformer",
    "TimeSformerBlock",
    "PatchEmbed",
    "HF_KEY_RULES",
    "checkpoint_filter_fn",
    "hf_to_official_key",
    "load_imagenet_vit",
]

AttentionType = Literal["divided_space_time", "joint_space_time", "space_only"]
_ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")

# Keyword arguments timm's ``create_model`` / ``build_model_with_cfg`` may forward to any model.
# They have no meaning here; anything else unknown is a typo and raises ``TypeError``.
_TIMM_PASSTHROUGH_KWARGS = frozenset(
    {"global_pool", "drop_block_rate", "bn_momentum", "bn_eps", "pretrained_cfg", "pretrained_cfg_overlay"}
)


class PatchEmbed(nn.Module):
    """Per-frame ``Conv2d`` patchifier: frames are folded into the batch, as in the official code."""

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768) -> None:
        super().__init__()
        img_size = to_2tuple(img_size)
        patch_size = to_2tuple(patch_size)
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = (img_size[0] // patch_size[0], img_size[1] // patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """``(B, C, T, H, W)`` -> ``(B*T, Hp*Wp, D)`` (row ``b*T + t``), plus ``Hp`` and ``Wp``."""
        B, C, T, H, W = x.shape
        x = x.transpose(1, 2).reshape(B * T, C, H, W)
        x = self.proj(x)
        Hp, Wp = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), Hp, Wp


class TimeSformerBlock(nn.Module):
    """One transformer block; ``divided_space_time`` adds the temporal branch (temporal first).

    Parameters are registered in the official order (``norm1, attn, temporal_norm1,
    temporal_attn, temporal_fc, norm2, mlp``) so the ``state_dict`` order matches the checkpoints.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        attention_type: AttentionType = "divided_space_time",
    ) -> None:
        super().__init__()
        self.attention_type = attention_type
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                              attn_drop=attn_drop, proj_drop=drop)
        if attention_type == "divided_space_time":
            self.temporal_norm1 = norm_layer(dim)
            self.temporal_attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                           attn_drop=attn_drop, proj_drop=drop)
            self.temporal_fc = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def forward(self, x: torch.Tensor, B: int, T: int) -> torch.Tensor:
        if self.attention_type != "divided_space_time":
            # space_only: x is (B*T, 1+N, D); joint: (B, 1+N*T, D). A plain ViT block either way.
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))

        D = x.shape[-1]
        cls, patches = x[:, :1], x[:, 1:]  # (B, 1, D), (B, N*T, D)
        N = patches.shape[1] // T

        # 1. Temporal attention over each patch position (B*N sequences of length T). With the
        #    space-major / time-minor order this regrouping is a plain reshape.
        xt = patches.reshape(B * N, T, D)
        res_t = self.drop_path(self.temporal_attn(self.temporal_norm1(xt))).reshape(B, N * T, D)
        patches = patches + self.temporal_fc(res_t)

        # 2. Spatial attention per frame on the post-temporal patches, each frame prefixed with a
        #    copy of the block-input cls token; rows are ordered b*T + t.
        xs = patches.reshape(B, N, T, D).transpose(1, 2).reshape(B * T, N, D)
        cls_copies = cls.expand(B, T, D).reshape(B * T, 1, D)
        res_s = self.drop_path(self.attn(self.norm1(torch.cat((cls_copies, xs), dim=1))))
        cls_res = res_s[:, 0].reshape(B, T, D).mean(dim=1, keepdim=True)  # average over frames
        patch_res = res_s[:, 1:].reshape(B, T, N, D).transpose(1, 2).reshape(B, N * T, D)

        # 3. Residual merge: cls adds to the block input, patches to the post-temporal tokens.
        x = torch.cat((cls, patches), dim=1) + torch.cat((cls_res, patch_res), dim=1)
        # 4. MLP over all tokens.
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TimeSformer(nn.Module):
    """TimeSformer video classifier; keyword names follow the official ``VisionTransformer``.

    Attention maps (``uniformer.models.layers.attention_capture``): in a divided block,
    ``blocks.i.attn.attn_map`` is ``(B*T, heads, 1+N, 1+N)`` with batch row ``b*T + t`` (frame
    ``t`` of clip ``b``; query/key 0 is that frame's cls copy, ``1+n`` is patch ``n = h*Wp + w``), so
    sample 0 is rows ``[0:T]``; ``blocks.i.temporal_attn.attn_map`` is ``(B*N, heads, T, T)`` with
    row ``b*N + n`` (patch position ``n``; query/key are frames), so sample 0 is rows ``[0:N]``.
    ``joint_space_time`` maps are ``(B, heads, 1+N*T, 1+N*T)`` in token order ``1 + n*T + t``;
    ``space_only`` maps are ``(B*T, heads, 1+N, 1+N)`` like the spatial ones.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 400,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        num_frames: int = 8,
        attention_type: AttentionType = "divided_space_time",
        norm_eps: float = 1e-6,
        time_embed_std: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        unknown = set(kwargs) - _TIMM_PASSTHROUGH_KWARGS
        if unknown:
            raise TypeError(f"TimeSformer got unexpected keyword argument(s): {', '.join(sorted(unknown))}.")
        if attention_type not in _ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {', '.join(_ATTENTION_TYPES)}, got {attention_type!r}.")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads}).")
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.num_frames = num_frames
        self.attention_type = attention_type
        self.time_embed_std = time_embed_std
        self.grad_checkpointing = False

        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(p=drop_rate)
        if attention_type != "space_only":
            self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
            self.time_drop = nn.Dropout(p=drop_rate)

        dpr = [v.item() for v in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        self.blocks = nn.ModuleList([
            TimeSformerBlock(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
                             drop=drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i], norm_layer=norm_layer,
                             attention_type=attention_type)
            for i in range(depth)
        ])
        self.norm = norm_layer(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()

    # ----------------------------------------------------------------------------------- init
    def init_weights(self) -> None:
        """Official init: trunc-normal(0.02) embeddings and Linears, zero ``time_embed`` and
        zero ``temporal_fc`` in every block so a 2D ImageNet ViT starts as a pure spatial model.

        ``time_embed_std > 0`` draws ``time_embed`` like ``pos_embed`` instead: trained from
        scratch, a zero time embedding leaves frame order invisible and the model sits at chance
        for hundreds of steps (shared/notes/lab-scale-pilot.md). Checkpoints load unchanged.
        """
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        if self.time_embed_std > 0 and self.attention_type != "space_only":
            trunc_normal_(self.time_embed, std=self.time_embed_std)
        self.apply(_init_weights)
        if self.attention_type == "divided_space_time":
            for blk in self.blocks:
                nn.init.zeros_(blk.temporal_fc.weight)
                nn.init.zeros_(blk.temporal_fc.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "time_embed"}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in backward (memory for compute), as in timm models."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head (fresh trunc-normal init); ``global_pool`` is accepted for timm only."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            _init_weights(self.head)

    def load_pretrained(self, path: str, prefix: str = "") -> None:
        """timm's ``custom_load`` hook: safe reader, :func:`checkpoint_filter_fn`, strict load."""
        _load_pretrained(self, path, filter_fn=checkpoint_filter_fn)

    # ------------------------------------------------------------------------------ embedding
    def _resized_pos_embed(self, num_tokens: int, Hp: int, Wp: int) -> torch.Tensor:
        pos_embed = self.pos_embed
        # Official condition: resize only when the token *count* differs.
        if num_tokens == pos_embed.shape[1]:
            return pos_embed
        D = pos_embed.shape[-1]
        gh, gw = self.patch_embed.grid_size
        grid = pos_embed[:, 1:].transpose(1, 2).reshape(1, D, gh, gw)
        grid = F.interpolate(grid, size=(Hp, Wp), mode="nearest")  # legacy nearest, as official
        return torch.cat((pos_embed[:, :1], grid.flatten(2).transpose(1, 2)), dim=1)

    def _resized_time_embed(self, T: int) -> torch.Tensor:
        time_embed = self.time_embed
        if T == time_embed.shape[1]:
            return time_embed
        return F.interpolate(time_embed.transpose(1, 2), size=T, mode="nearest").transpose(1, 2)

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Patchify and add embeddings; returns the input of block 0 plus ``B`` and ``T``."""
        if x.ndim != 5 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"TimeSformer expects a (batch, {self.in_chans}, frames, height, width) tensor, "
                f"got shape {tuple(x.shape)}."
            )
        ph, pw = self.patch_embed.patch_size
        if x.shape[-2] < ph or x.shape[-1] < pw:
            raise ValueError(f"Frames of {x.shape[-2]}x{x.shape[-1]} px are smaller than one {ph}x{pw} patch.")
        B, T = x.shape[0], x.shape[2]
        x, Hp, Wp = self.patch_embed(x)  # (B*T, N, D)
        N, D = x.shape[1], x.shape[2]
        x = torch.cat((self.cls_token.expand(B * T, -1, -1), x), dim=1)
        x = self.pos_drop(x + self._resized_pos_embed(N + 1, Hp, Wp))
        if self.attention_type == "space_only":
            return x, B, T

        # Official quirk: the cls token is read from rows [0:B] of the (B*T) frame batch. All rows
        # hold the same value unless pos_drop is active in training, where this matters.
        cls = x[:B, :1]
        patches = x[:, 1:].reshape(B, T, N, D).transpose(1, 2).reshape(B * N, T, D)
        patches = self.time_drop(patches + self._resized_time_embed(T))
        return torch.cat((cls, patches.reshape(B, N * T, D)), dim=1), B, T

    # -------------------------------------------------------------------------------- forward
    def _run_blocks(self, x: torch.Tensor, B: int, T: int, hidden: list[torch.Tensor] | None = None) -> torch.Tensor:
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x = checkpoint(blk, x, B, T, use_reentrant=False)
            else:
                x = blk(x, B, T)
            if hidden is not None:
                hidden.append(x)
        return x

    def _final(self, x: torch.Tensor, B: int, T: int) -> torch.Tensor:
        if self.attention_type == "space_only":
            x = x.reshape(B, T, *x.shape[1:]).mean(dim=1)  # average every token over frames
        return self.norm(x)[:, 0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, D)``: the final-norm cls token (pre-logits features)."""
        x, B, T = self._embed(x)
        x = self._run_blocks(x, B, T)
        return self._final(x, B, T)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Token sequences ``[embedding output, block 0 output, ..., block depth-1 output]``.

        Shapes: ``(B, 1+N*T, D)`` in token order ``1 + n*T + t`` (divided / joint), or
        ``(B*T, 1+N, D)`` with row ``b*T + t`` for ``space_only``.
        """
        x, B, T = self._embed(x)
        hidden = [x]
        self._run_blocks(x, B, T, hidden)
        return hidden


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------- ImageNet ViT -> 3D
def load_imagenet_vit(model: TimeSformer, vit_state_dict: Mapping[str, torch.Tensor]):
    """Initialise ``model`` from a 2D ImageNet ViT ``state_dict`` the way the official
    ``load_pretrained`` does, and return ``(missing_keys, unexpected_keys)`` of the non-strict load.

    - ``blocks.i.attn.*`` -> ``blocks.i.temporal_attn.*`` and ``norm1`` -> ``temporal_norm1`` when
      absent (divided attention only); ``temporal_fc`` and ``time_embed`` keep their zero init;
    - the head is dropped when its class count differs from the model's;
    - ``pos_embed`` of another length is resized with **1-D nearest over the flattened patch
      sequence** (the official quirk, not a 2-D grid resize); ``time_embed`` 1-D nearest;
    - a linear-shaped (2-D) patch projection is reshaped to conv form; 1-channel models sum the RGB
      filters, other channel counts keep their fresh patch projection (as official).
    Key names are those of the official / timm ``vit_base_patch16_224``.
    """
    sd: dict[str, torch.Tensor] = dict(vit_state_dict)
    if "pos_embed" not in sd:
        raise CheckpointError("The ImageNet ViT state dict has no 'pos_embed', so it is not a ViT checkpoint.")

    proj = sd.get("patch_embed.proj.weight")
    if proj is not None and proj.ndim == 2:  # very old ViT weights stored the projection as Linear
        ph, pw = model.patch_embed.patch_size
        proj = proj.reshape(proj.shape[0], 3, ph, pw)
        sd["patch_embed.proj.weight"] = proj
    if proj is not None and model.in_chans != proj.shape[1]:
        if model.in_chans == 1:
            sd["patch_embed.proj.weight"] = proj.float().sum(dim=1, keepdim=True).to(proj.dtype)
        else:
            del sd["patch_embed.proj.weight"]

    if not head_fits(model, sd):
        for key in [k for k in sd if k.startswith("head.")]:
            del sd[key]

    num_patches = model.patch_embed.num_patches
    pos_embed = sd["pos_embed"]
    if pos_embed.shape[1] != num_patches + 1:
        other = F.interpolate(pos_embed[:, 1:].transpose(1, 2), size=num_patches, mode="nearest")
        sd["pos_embed"] = torch.cat((pos_embed[:, :1], other.transpose(1, 2)), dim=1)
    if "time_embed" in sd and sd["time_embed"].shape[1] != model.num_frames:
        sd["time_embed"] = F.interpolate(sd["time_embed"].transpose(1, 2), size=model.num_frames,
                                         mode="nearest").transpose(1, 2)

    if model.attention_type == "divided_space_time":
        for key in list(sd):
            if not key.startswith("blocks."):
                continue
            for src, dst in ((".attn.", ".temporal_attn."), (".norm1.", ".temporal_norm1.")):
                if src in key:
                    sd.setdefault(key.replace(src, dst), sd[key])

    try:
        return model.load_state_dict(sd, strict=False)
    except RuntimeError as err:  # shape mismatch: report one sentence, keep the detail chained
        raise CheckpointError(
            "The ImageNet ViT weights do not fit this TimeSformer (different embed_dim, depth or patch size)."
        ) from err


# -------------------------------------------------------------------- checkpoint filtering
# Hugging Face ``TimesformerForVideoClassification`` -> official names. A one-to-one rename (no
# tensor reshaping); verified against transformers 5.24.0 (see the reference README). Applied in
# order, on keys with a leading ``timesformer.`` already removed.
HF_KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.time_embeddings$", "time_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^encoder\.layer\.(\d+)\.attention\.attention\.qkv\.", r"blocks.\1.attn.qkv."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.temporal_layernorm\.", r"blocks.\1.temporal_norm1."),
    (r"^encoder\.layer\.(\d+)\.temporal_attention\.attention\.qkv\.", r"blocks.\1.temporal_attn.qkv."),
    (r"^encoder\.layer\.(\d+)\.temporal_attention\.output\.dense\.", r"blocks.\1.temporal_attn.proj."),
    (r"^encoder\.layer\.(\d+)\.temporal_dense\.", r"blocks.\1.temporal_fc."),
    (r"^encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^layernorm\.", "norm."),
    (r"^classifier\.", "head."),
)
_HF_RULES = tuple((re.compile(p), r) for p, r in HF_KEY_RULES)
_HF_MARKERS = ("timesformer.", "embeddings.", "encoder.layer.")


def hf_to_official_key(key: str) -> str:
    """One Hugging Face TimeSformer key -> the official name (unknown keys come back unchanged,
    so a strict load reports them instead of dropping them)."""
    k = key[len("timesformer."):] if key.startswith("timesformer.") else key
    for pattern, repl in _HF_RULES:
        new, n = pattern.subn(repl, k)
        if n:
            return new
    return key


def _is_hf_state_dict(sd: Mapping[str, Any]) -> bool:
    return any(k.startswith(_HF_MARKERS) for k in sd)


def checkpoint_filter_fn(state_dict: Any, model: TimeSformer | None = None) -> dict[str, torch.Tensor]:
    """Turn any supported TimeSformer checkpoint into a ``state_dict`` for ``load_state_dict``.

    Accepts official ``.pyth`` dicts (``model_state`` with ``model.`` prefixes), ``{'model': ...}``,
    ``{'state_dict': ...}``, ``module.``-prefixed keys and Hugging Face ``facebook/timesformer-*``
    names. Only unwraps (``uniformer.models.checkpoint.unwrap_state_dict``) and renames: nothing
    is added, resized or dropped, so a mismatch still fails the strict load that should follow
    (``load_checkpoint(model, path, filter_fn=checkpoint_filter_fn)`` does that load).
    """
    sd = unwrap_state_dict(state_dict)
    if _is_hf_state_dict(sd):
        sd = {hf_to_official_key(k): v for k, v in sd.items()}
    if model is not None:  # official order first (cosmetic: keeps saved files diffable)
        order = {k: i for i, k in enumerate(model.state_dict().keys())}
        sd = dict(sorted(sd.items(), key=lambda kv: order.get(kv[0], len(order))))
    return OrderedDict(sd)


# ------------------------------------------------------------------------ timm registration
# One name per released checkpoint, after the official file names
# (``timesformer_{base,hr,large}_{k400,k600}_{T}x{rate}``, ``timesformer_{base,hr,large}_ssv2_{T}``),
# plus the bundled tiny model this project trained. The hub copies are the Hugging Face ports
# (HF key names, converted by :func:`checkpoint_filter_fn`). Test protocols, label lists and
# published results are in ``uniformer.zoo``.
TIMESFORMER_ORIGIN = "https://github.com/facebookresearch/TimeSformer#model-zoo"
FIRST_CONV = "patch_embed.proj"  # the per-frame patch projection (timm's first_conv)
_BASE = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True,
             attention_type="divided_space_time")
_TINY = dict(img_size=64, patch_size=16, embed_dim=96, depth=4, num_heads=4, num_frames=8,
             attention_type="divided_space_time")
# configs/lab_timesformer.toml: patch 8 at 112 px gives 14x14 tokens per frame (3x3 is 4.6 % of a frame,
# as for ViT-B/16 at 224 px); time_embed drawn with std 0.02 since it is trained from scratch.
_LAB = dict(_TINY, img_size=112, patch_size=8, time_embed_std=0.02)
ARCHS = {"base": _BASE, "tiny": _TINY, "lab": _LAB}  # read by uniformer.zoo (one source)


def _cfg(size: str | None = None, dataset: str | None = None, **kwargs: Any) -> dict[str, Any]:
    hub = dict(hf_hub_id=f"facebook/timesformer-{size}-finetuned-{dataset}", hf_hub_filename="pytorch_model.bin",
               origin_url=TIMESFORMER_ORIGIN, license="cc-by-nc-4.0") if size else dict(license="mit")
    return video_cfg(first_conv=FIRST_CONV, **hub, **kwargs,
                     paper_name="Is Space-Time Attention All You Need for Video Understanding? (ICML 2021)")


default_cfgs = generate_default_cfgs({
    "timesformer_base_k400_8x32": _cfg("base", "k400", num_classes=400, img_size=224),
    "timesformer_hr_k400_16x16": _cfg("hr", "k400", num_classes=400, img_size=448),
    "timesformer_large_k400_96x4": _cfg("large", "k400", num_classes=400, img_size=224),
    "timesformer_base_k600_8x32": _cfg("base", "k600", num_classes=600, img_size=224),
    "timesformer_hr_k600_16x16": _cfg("hr", "k600", num_classes=600, img_size=448),
    "timesformer_large_k600_96x4": _cfg("large", "k600", num_classes=600, img_size=224),
    "timesformer_base_ssv2_8": _cfg("base", "ssv2", num_classes=174, img_size=224),
    "timesformer_hr_ssv2_16": _cfg("hr", "ssv2", num_classes=174, img_size=448),
    "timesformer_large_ssv2_64": _cfg("large", "ssv2", num_classes=174, img_size=224),
    "timesformer_tiny_synthetic_8x2": _cfg(file=str(CHECKPOINTS_DIR / "timesformer_tiny_synthetic_8x2.safetensors"),
                                           num_classes=12, img_size=64),
    "timesformer_lab": _cfg(file=str(CHECKPOINTS_DIR / "timesformer_lab.safetensors"), num_classes=12, img_size=112),
})


def _create(variant: str, pretrained: bool, arch: dict[str, Any], **kwargs: Any) -> TimeSformer:
    return build_video_model(TimeSformer, variant, pretrained, checkpoint_filter_fn, arch, **kwargs)


@register_model
def timesformer_base_k400_8x32(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_base_k400_8x32", pretrained, dict(_BASE, img_size=224, num_frames=8), **kwargs)

@register_model
def timesformer_hr_k400_16x16(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_hr_k400_16x16", pretrained, dict(_BASE, img_size=448, num_frames=16), **kwargs)

@register_model
def timesformer_large_k400_96x4(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_large_k400_96x4", pretrained, dict(_BASE, img_size=224, num_frames=96), **kwargs)

@register_model
def timesformer_base_k600_8x32(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_base_k600_8x32", pretrained, dict(_BASE, img_size=224, num_frames=8), **kwargs)

@register_model
def timesformer_hr_k600_16x16(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_hr_k600_16x16", pretrained, dict(_BASE, img_size=448, num_frames=16), **kwargs)

@register_model
def timesformer_large_k600_96x4(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_large_k600_96x4", pretrained, dict(_BASE, img_size=224, num_frames=96), **kwargs)

@register_model
def timesformer_base_ssv2_8(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_base_ssv2_8", pretrained, dict(_BASE, img_size=224, num_frames=8), **kwargs)

@register_model
def timesformer_hr_ssv2_16(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_hr_ssv2_16", pretrained, dict(_BASE, img_size=448, num_frames=16), **kwargs)

@register_model
def timesformer_large_ssv2_64(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_large_ssv2_64", pretrained, dict(_BASE, img_size=224, num_frames=64), **kwargs)

@register_model
def timesformer_tiny_synthetic_8x2(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_tiny_synthetic_8x2", pretrained, _TINY, **kwargs)


@register_model
def timesformer_lab(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    return _create("timesformer_lab", pretrained, _LAB, **kwargs)
