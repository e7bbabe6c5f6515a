"""UniFormer for video (Li et al., ICLR 2022), numerically equivalent to the official model.

Mapping from the paper to this file (paper Eq. 1-3, one UniFormer block):

* ``X = DPE(X_in) + X_in`` -- ``pos_embed``: a depthwise 3x3x3 Conv3d added residually, first op
  of every block. It is the only position information in the network (no absolute table), so any
  ``T x H x W`` is accepted.
* ``Y = MHRA(Norm(X)) + X`` -- the Multi-Head Relation Aggregator, two flavours:

  - *local* MHRA (``LocalBlock``, letter ``L``, official ``CBlock``): ``conv2(attn(conv1(BN(x))))``.
    ``conv1`` is the paper's context encoding V, ``conv2`` the head fusion U, and the token affinity
    ``A^local`` (Eq. 6) is ``attn``: a depthwise 5x5x5 Conv3d. The official code therefore has one
    learnable 5x5x5 affinity *per channel* (C heads of width 1), not one per head as the paper's
    formula reads, and uses BatchNorm rather than LayerNorm as "Norm".
  - *global* MHRA (``GlobalBlock``, letter ``G``, official ``SABlock``): ordinary multi-head
    self-attention over all ``L = T*H*W`` tokens (``A^global = softmax(QK^T)``), computed by the
    shared ``uniformer.models.layers.Attention`` so ``attention_capture`` can expose the maps.
    ``SplitGlobalBlock`` (``split=True``) factorises it into temporal-then-spatial attention.
* ``Z = FFN(Norm(Y)) + Y`` -- ``mlp``: two pointwise layers with exact GELU (1x1x1 convs after BN
  in local blocks, Linear layers after LayerNorm in global blocks).

Stage layout (the paper's ablation of local vs global MHRA per stage, Table 1/Fig. 2): ``layout`` is
one letter per stage, ``L`` = every block of that stage is a ``LocalBlock``, ``G`` = a
``GlobalBlock`` (``SplitGlobalBlock`` with ``split=True``). The paper's UniFormer is ``"LLGG"``
(the default: local affinity where tokens are many and redundant, global attention on the
coarse late grids); ``"LLLL"`` is a pure convolutional network, ``"GGGG"`` a global-attention
transformer with the same stem, DPE, FFN and widths. The layout changes only which block class a
stage builds: every other argument, the module names (``blocks{s}.{i}``) and the parameter order
within a block stay the same, so ``"LLGG"`` is exactly the official model. Global stages need a
width that is a multiple of ``head_dim``; ``model.layout`` keeps the string so a checkpoint's
stored constructor arguments rebuild the same network.

Stem and downsampling are ``PatchEmbed3d`` (Conv3d then channel LayerNorm). The head is
BatchNorm3d -> mean over T'H'W' -> Linear. State-dict keys, their order and every numeric detail
(LayerNorm eps 1e-5 in patch embeds but 1e-6 in blocks, head width, split-block residual quirk)
follow ``shared/reference/uniformer/README.md`` so that official checkpoints load with
``strict=True``.

The blocks live in ``uniformer.models.uniformer_blocks`` (re-exported here). Every stage keeps the
input clip's memory layout: a ``torch.channels_last_3d`` clip runs channels-last end to end (token
views free, depthwise convs at their fastest, pointwise convs as GEMMs; what
``uniformer.models.optimize.optimize_for_inference`` feeds), with the values of the default layout
to float rounding; a default-layout clip takes the official path unchanged.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.utils.checkpoint
from timm.models import generate_default_cfgs, register_model
from torch import nn

from uniformer.assets import CHECKPOINTS_DIR
from uniformer.errors import ModelConfigError
from uniformer.models.checkpoint import load_pretrained as _load_pretrained
from uniformer.models.checkpoint import unwrap_state_dict
from uniformer.models.registry import build_video_model, video_cfg
from uniformer.models.uniformer_blocks import (
    GlobalBlock,
    LocalBlock,
    Mlp,
    PatchEmbed3d,
    SplitGlobalBlock,
    is_channels_last,
)

__all__ = [
    "UniFormer",
    "DEFAULT_LAYOUT",
    "parse_layout",
    "PatchEmbed3d",
    "LocalBlock",
    "GlobalBlock",
    "SplitGlobalBlock",
    "Mlp",
    "checkpoint_filter_fn",
]

# Keyword arguments that timm's builder may hand to a model class and that carry no meaning here.
_TIMM_BOOKKEEPING_KWARGS = frozenset(
    {"pretrained_cfg", "pretrained_cfg_overlay", "pretrained_model_args", "cache_dir"}
)
# Smallest height/width that survives the four spatial downsamplings (4 * 2 * 2 * 2).
_MIN_SPATIAL = 32

# The paper's UniFormer: local MHRA in stages 1-2, global MHRA in stages 3-4.
DEFAULT_LAYOUT = "LLGG"
_LAYOUT_LETTERS = frozenset("LG")


def _four(name: str, value: Sequence[int]) -> list[int]:
    values = list(value)
    if len(values) != 4:
        raise ModelConfigError(f"UniFormer needs four values for {name} (one per stage), got {values}.")
    return [int(v) for v in values]


def parse_layout(layout: Any) -> str:
    """Validate a stage layout (``"LLGG"``: ``L`` local / ``G`` global MHRA per stage), upper-cased."""
    text = layout.strip().upper() if isinstance(layout, str) else None
    if text is None or len(text) != 4 or not set(text) <= _LAYOUT_LETTERS:
        raise ModelConfigError(
            f"UniFormer layout must be four letters, one per stage, each L (local) or G (global) "
            f"such as 'LLGG', got {layout!r}."
        )
    return text


class UniFormer(nn.Module):
    """UniFormer video classifier; input ``(B, C, T, H, W)`` (or a one-element list of it).

    Constructor arguments carry the official names and defaults (UniFormer-S); ``img_size`` is
    bookkeeping only. ``layout`` (not in the official code) picks local or global MHRA per stage,
    see the module docstring. Unknown keyword arguments raise ``TypeError`` except the bookkeeping ones
    timm's builder passes (``pretrained_cfg`` ...) and ``global_pool='avg'``.
    """

    def __init__(
        self,
        depth: Sequence[int] = (3, 4, 8, 3),
        num_classes: int = 400,
        img_size: int = 224,
        in_chans: int = 3,
        embed_dim: Sequence[int] = (64, 128, 320, 512),
        head_dim: int = 64,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        representation_size: int | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        split: bool = False,
        std: bool = False,
        use_checkpoint: bool = False,
        checkpoint_num: Sequence[int] = (0, 0, 0, 0),
        layout: str = DEFAULT_LAYOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        global_pool = kwargs.pop("global_pool", None)
        if global_pool not in (None, "avg"):
            raise ValueError(f"UniFormer only supports global_pool='avg', got {global_pool!r}.")
        unknown = sorted(set(kwargs) - _TIMM_BOOKKEEPING_KWARGS)
        if unknown:
            raise TypeError(f"UniFormer got unexpected keyword argument(s): {', '.join(unknown)}.")
        layout = parse_layout(layout)
        depth = _four("depth", depth)
        embed_dim = _four("embed_dim", embed_dim)
        for s in (s for s, kind in enumerate(layout) if kind == "G"):
            if embed_dim[s] % head_dim or embed_dim[s] < head_dim:
                raise ModelConfigError(
                    f"embed_dim[{s}]={embed_dim[s]} must be a positive multiple of "
                    f"head_dim={head_dim} because stage {s + 1} is global in layout {layout!r}."
                )

        self.num_classes = num_classes
        self.img_size = img_size
        self.in_chans = in_chans
        self.depth = depth
        self.embed_dim = embed_dim
        self.layout = layout
        self.num_heads = [d // head_dim for d in embed_dim]
        self.split = split
        self.std = std
        self.use_checkpoint = use_checkpoint
        self.checkpoint_num = _four("checkpoint_num", checkpoint_num)
        self.grad_checkpointing = False  # timm switch: checkpoint every block when True

        # Registration order reproduces the official state-dict key order.
        self.patch_embed1 = PatchEmbed3d(in_chans, embed_dim[0], (3, 4, 4), (2, 4, 4), (1, 0, 0))
        kt = 3 if std else 1  # std=True adds temporal context but keeps temporal stride 1
        for s in (1, 2, 3):
            embed = PatchEmbed3d(embed_dim[s - 1], embed_dim[s], (kt, 2, 2), (1, 2, 2), (kt // 2, 0, 0))
            self.add_module(f"patch_embed{s + 1}", embed)
        self.pos_drop = nn.Dropout(p=drop_rate)

        dpr = torch.linspace(0, drop_path_rate, sum(depth), device="cpu").tolist()
        global_cls = SplitGlobalBlock if split else GlobalBlock
        offset = 0
        for s in range(4):
            blocks = []
            for i in range(depth[s]):
                if layout[s] == "L":
                    blk = LocalBlock(embed_dim[s], mlp_ratio, drop_rate, dpr[offset + i])
                else:
                    blk = global_cls(
                        embed_dim[s], self.num_heads[s], mlp_ratio, qkv_bias, qk_scale,
                        drop_rate, attn_drop_rate, dpr[offset + i],
                    )
                blocks.append(blk)
            self.add_module(f"blocks{s + 1}", nn.ModuleList(blocks))
            offset += depth[s]

        self.norm = nn.BatchNorm3d(embed_dim[-1])
        if representation_size:
            # The official class builds this from the whole embed_dim list and crashes; we fix it
            # (as the HF demo fixes reset_classifier) and apply it after pooling. No checkpoint uses it.
            self.num_features = representation_size
            self.pre_logits = nn.Sequential(
                OrderedDict(fc=nn.Linear(embed_dim[-1], representation_size), act=nn.Tanh())
            )
        else:
            self.num_features = embed_dim[-1]
            self.pre_logits = nn.Identity()
        self.head_hidden_size = self.num_features
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info = [
            dict(num_chs=embed_dim[s], reduction=4 * 2**s, module=f"blocks{s + 1}") for s in range(4)
        ]

        self.apply(self._init_weights)
        if split:
            # Official init: temporal attention starts as qkv = 0, proj.weight = 1.
            for name, p in self.named_parameters():
                if ".t_attn." in name:
                    nn.init.constant_(p, 1.0 if name.endswith("proj.weight") else 0.0)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # ----------------------------------------------------------------------------------- access
    @property
    def patch_embeds(self) -> tuple[PatchEmbed3d, ...]:
        return (self.patch_embed1, self.patch_embed2, self.patch_embed3, self.patch_embed4)

    @property
    def stages(self) -> tuple[nn.ModuleList, ...]:
        """The four block lists (``blocks1`` .. ``blocks4``), 0-indexed here."""
        return (self.blocks1, self.blocks2, self.blocks3, self.blocks4)

    def local_blocks(self) -> dict[str, LocalBlock]:
        """``{'blocks{s}.{i}': block}`` for every local block (its ``local_affinity`` is the kernel)."""
        return {
            f"blocks{s + 1}.{i}": blk
            for s, stage in enumerate(self.stages)
            for i, blk in enumerate(stage)
            if isinstance(blk, LocalBlock)
        }

    def local_affinity(self, stage: int, block: int) -> torch.Tensor:
        """Depthwise 5x5x5 kernel ``(C, 1, 5, 5, 5)`` of ``blocks{stage}.{block}`` (stage from 1)."""
        blk = self.stages[stage - 1][block]
        if not isinstance(blk, LocalBlock):
            raise ValueError(f"blocks{stage}.{block} is a global block and has no local affinity.")
        return blk.local_affinity

    # ---------------------------------------------------------------------------- timm surface
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Nothing beyond 1-D params (which the optimiser factories exclude anyway)."""
        return set()

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint every block (``True``) or none (``False``, also clears ``use_checkpoint``)."""
        self.grad_checkpointing = enable
        if not enable:
            self.use_checkpoint = False

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool not in (None, "avg"):
            raise ValueError(f"UniFormer only supports global_pool='avg', got {global_pool!r}.")
        self.num_classes = num_classes
        device = self.norm.weight.device
        self.head = (
            nn.Linear(self.num_features, num_classes, device=device) if num_classes > 0 else nn.Identity()
        )
        self.head.apply(self._init_weights)

    def load_pretrained(self, path: str, prefix: str = "") -> None:
        """timm's ``custom_load`` hook: safe reader, :func:`checkpoint_filter_fn`, strict load."""
        _load_pretrained(self, path, filter_fn=checkpoint_filter_fn)

    # --------------------------------------------------------------------------------- forward
    def _as_clip(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(x, (list, tuple)):
            if len(x) != 1:
                raise ValueError(f"UniFormer takes one pathway, got a list of {len(x)} tensors.")
            x = x[0]
        if not isinstance(x, torch.Tensor) or x.ndim != 5:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"UniFormer expects a clip tensor shaped (batch, channels, frames, height, width), got {got}."
            )
        if x.shape[1] != self.in_chans or min(x.shape[-2:]) < _MIN_SPATIAL:
            raise ValueError(
                f"UniFormer expects {self.in_chans} channels and height/width of at least "
                f"{_MIN_SPATIAL} pixels, got input shaped {tuple(x.shape)}."
            )
        return x

    def _run_stage(self, s: int, x: torch.Tensor) -> torch.Tensor:
        for i, blk in enumerate(self.stages[s]):
            ckpt = self.grad_checkpointing or (self.use_checkpoint and i < self.checkpoint_num[s])
            if ckpt and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def _trunk(self, x: torch.Tensor, collect: dict[str, list[torch.Tensor]] | None = None) -> torch.Tensor:
        x = self._as_clip(x)
        # every stage keeps the input's layout: channels-last runs end to end without a copy, the
        # default layout is the official path (patch embeds return channels-last views)
        layout = torch.channels_last_3d if is_channels_last(x) else torch.contiguous_format
        for s, embed in enumerate(self.patch_embeds):
            x = embed(x).contiguous(memory_format=layout)
            if collect is not None:
                collect["patch_embed_outputs"].append(x)
            if s == 0:
                x = self.pos_drop(x)
            x = self._run_stage(s, x)
            if collect is not None:
                collect["stage_outputs"].append(x)
        return x

    def forward_features(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Stage-4 map after the final BatchNorm3d, ``(B, C4, T', H', W')``."""
        return self.norm(self._trunk(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Mean over T'H'W' then the classifier; ``pre_logits=True`` returns the pooled features."""
        x = self.pre_logits(x.flatten(2).mean(-1))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_stages(self, x: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, Any]:
        """Everything the analysis views need from one pass.

        Returns ``patch_embed_outputs`` (4, after their LayerNorm), ``stage_outputs`` (4, output of
        each stage's last block, before the final norm), ``features`` (after the final norm),
        ``pooled`` (head input) and ``logits``.
        """
        collect: dict[str, list[torch.Tensor]] = {"patch_embed_outputs": [], "stage_outputs": []}
        features = self.norm(self._trunk(x, collect))
        pooled = self.forward_head(features, pre_logits=True)
        return {**collect, "features": features, "pooled": pooled, "logits": self.head(pooled)}


# ------------------------------------------------------------------------------ checkpoints
def checkpoint_filter_fn(state_dict: Any, model: nn.Module) -> dict[str, torch.Tensor]:
    """Normalise an official video checkpoint for ``model.load_state_dict(strict=True)``.

    Accepts the raw loaded object (plain, ``model`` / ``model_state`` / ``state_dict``
    containers), strips a ``module.`` / ``backbone.`` prefix shared by all keys (both through
    ``uniformer.models.checkpoint.unwrap_state_dict``) and fills in BatchNorm
    ``num_batches_tracked`` buffers the file may lack (they never affect eval). Shape and key
    validation is left to ``match_state_dict`` so that a head can still be ignored for fine-tuning.
    """
    sd = dict(unwrap_state_dict(state_dict))
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = v.detach().clone()
    return sd


# ------------------------------------------------------------------------ timm registration
# One name per released checkpoint, spelled like the files in ``Sense-X/uniformer_video``
# (``uniformer_small_k400_16x8``: size, dataset, frames x sampling stride;
# ``uniformer_base_sthv2_32_prek600``: Something-Something V2, 32 frames, K600-pretrained), plus the
# bundled tiny model this project trained (``assets/checkpoints``). ``uniformer.zoo`` holds what
# travels with each checkpoint besides its weights: test protocol, label list, published results.
UNIFORMER_HUB = "Sense-X/uniformer_video"
UNIFORMER_ORIGIN = "https://github.com/Sense-X/UniFormer/tree/main/video_classification#model-zoo"
FIRST_CONV = "patch_embed1.proj"  # the stem conv (timm's first_conv; 2D->3D inflation starts here)
_SMALL = dict(depth=[3, 4, 8, 3], embed_dim=[64, 128, 320, 512], head_dim=64, img_size=224)
_BASE = dict(depth=[5, 8, 20, 7], embed_dim=[64, 128, 320, 512], head_dim=64, img_size=224)
_TINY = dict(depth=[1, 1, 2, 1], embed_dim=[32, 64, 96, 128], head_dim=32, img_size=64)
_LAB = dict(_TINY, img_size=112, layout="LLGG")  # configs/lab_uniformer.toml (the stage-layout ablation's recipe)
_LAB_GGGG = dict(_LAB, layout="GGGG")  # the same recipe with global attention in every stage (the ablation's GGGG)
ARCHS = {"small": _SMALL, "base": _BASE, "tiny": _TINY, "lab": _LAB, "lab_gggg": _LAB_GGGG}  # read by uniformer.zoo


def _cfg(hf_hub_filename: str | None = None, **kwargs: Any) -> dict[str, Any]:
    hub = dict(hf_hub_id=UNIFORMER_HUB, hf_hub_filename=hf_hub_filename, origin_url=UNIFORMER_ORIGIN) \
        if hf_hub_filename else {}
    return video_cfg(first_conv=FIRST_CONV, license="mit", paper_name="UniFormer (ICLR 2022, arXiv 2201.04676)",
                     **hub, **kwargs)


default_cfgs = generate_default_cfgs({
    "uniformer_small_k400_8x8": _cfg("uniformer_small_k400_8x8.pth", num_classes=400),
    "uniformer_small_k400_16x4": _cfg("uniformer_small_k400_16x4.pth", num_classes=400),
    "uniformer_small_k400_16x8": _cfg("uniformer_small_k400_16x8.pth", num_classes=400),
    "uniformer_base_k400_8x8": _cfg("uniformer_base_k400_8x8.pth", num_classes=400),
    "uniformer_base_k400_16x4": _cfg("uniformer_base_k400_16x4.pth", num_classes=400),
    "uniformer_base_k400_16x8": _cfg("uniformer_base_k400_16x8.pth", num_classes=400),
    "uniformer_base_k400_32x4": _cfg("uniformer_base_k400_32x4.pth", num_classes=400),
    "uniformer_small_k600_16x4": _cfg("uniformer_small_k600_16x4.pth", num_classes=600),
    "uniformer_small_k600_16x8": _cfg("uniformer_small_k600_16x8.pth", num_classes=600),
    "uniformer_base_k600_16x4": _cfg("uniformer_base_k600_16x4.pth", num_classes=600),
    "uniformer_base_k600_16x8": _cfg("uniformer_base_k600_16x8.pth", num_classes=600),
    "uniformer_base_k600_32x4": _cfg("uniformer_base_k600_32x4.pth", num_classes=600),
    "uniformer_small_sthv1_16_prek400": _cfg("uniformer_small_sthv1_16_prek400.pth", num_classes=174),
    "uniformer_small_sthv1_16_prek600": _cfg("uniformer_small_sthv1_16_prek600.pth", num_classes=174),
    "uniformer_small_sthv1_32_prek400": _cfg("uniformer_small_sthv1_32_prek400.pth", num_classes=174),
    "uniformer_small_sthv1_32_prek600": _cfg("uniformer_small_sthv1_32_prek600.pth", num_classes=174),
    "uniformer_base_sthv1_16_prek400": _cfg("uniformer_base_sthv1_16_prek400.pth", num_classes=174),
    "uniformer_base_sthv1_16_prek600": _cfg("uniformer_base_sthv1_16_prek600.pth", num_classes=174),
    "uniformer_base_sthv1_32_prek400": _cfg("uniformer_base_sthv1_32_prek400.pth", num_classes=174),
    "uniformer_base_sthv1_32_prek600": _cfg("uniformer_base_sthv1_32_prek600.pth", num_classes=174),
    "uniformer_small_sthv2_16_prek400": _cfg("uniformer_small_sthv2_16_prek400.pth", num_classes=174),
    "uniformer_small_sthv2_16_prek600": _cfg("uniformer_small_sthv2_16_prek600.pth", num_classes=174),
    "uniformer_small_sthv2_32_prek400": _cfg("uniformer_small_sthv2_32_prek400.pth", num_classes=174),
    "uniformer_small_sthv2_32_prek600": _cfg("uniformer_small_sthv2_32_prek600.pth", num_classes=174),
    "uniformer_base_sthv2_16_prek400": _cfg("uniformer_base_sthv2_16_prek400.pth", num_classes=174),
    "uniformer_base_sthv2_16_prek600": _cfg("uniformer_base_sthv2_16_prek600.pth", num_classes=174),
    "uniformer_base_sthv2_32_prek400": _cfg("uniformer_base_sthv2_32_prek400.pth", num_classes=174),
    "uniformer_base_sthv2_32_prek600": _cfg("uniformer_base_sthv2_32_prek600.pth", num_classes=174),
    "uniformer_tiny_synthetic_8x2": _cfg(file=str(CHECKPOINTS_DIR / "uniformer_tiny_synthetic_8x2.safetensors"),
                                         num_classes=12, img_size=64),
    "uniformer_lab": _cfg(file=str(CHECKPOINTS_DIR / "uniformer_lab.safetensors"), num_classes=12, img_size=112),
    "uniformer_lab_gggg": _cfg(file=str(CHECKPOINTS_DIR / "uniformer_lab_gggg.safetensors"), num_classes=12,
                               img_size=112),
})


def _create(variant: str, pretrained: bool, arch: dict[str, Any], **kwargs: Any) -> UniFormer:
    return build_video_model(UniFormer, variant, pretrained, checkpoint_filter_fn, arch, **kwargs)


@register_model
def uniformer_small_k400_8x8(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_k400_8x8", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_small_k400_16x4(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_k400_16x4", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_small_k400_16x8(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_k400_16x8", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_base_k400_8x8(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_k400_8x8", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_k400_16x4(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_k400_16x4", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_k400_16x8(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_k400_16x8", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_k400_32x4(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_k400_32x4", pretrained, _BASE, **kwargs)

@register_model
def uniformer_small_k600_16x4(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_k600_16x4", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_small_k600_16x8(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_k600_16x8", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_base_k600_16x4(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_k600_16x4", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_k600_16x8(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_k600_16x8", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_k600_32x4(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_k600_32x4", pretrained, _BASE, **kwargs)

@register_model
def uniformer_small_sthv1_16_prek400(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_sthv1_16_prek400", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_small_sthv1_16_prek600(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_sthv1_16_prek600", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_small_sthv1_32_prek400(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_sthv1_32_prek400", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_small_sthv1_32_prek600(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_sthv1_32_prek600", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_base_sthv1_16_prek400(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_sthv1_16_prek400", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_sthv1_16_prek600(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_sthv1_16_prek600", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_sthv1_32_prek400(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_sthv1_32_prek400", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_sthv1_32_prek600(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_sthv1_32_prek600", pretrained, _BASE, **kwargs)

@register_model
def uniformer_small_sthv2_16_prek400(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_sthv2_16_prek400", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_small_sthv2_16_prek600(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_sthv2_16_prek600", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_small_sthv2_32_prek400(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_sthv2_32_prek400", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_small_sthv2_32_prek600(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_small_sthv2_32_prek600", pretrained, _SMALL, **kwargs)

@register_model
def uniformer_base_sthv2_16_prek400(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_sthv2_16_prek400", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_sthv2_16_prek600(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_sthv2_16_prek600", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_sthv2_32_prek400(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_sthv2_32_prek400", pretrained, _BASE, **kwargs)

@register_model
def uniformer_base_sthv2_32_prek600(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_base_sthv2_32_prek600", pretrained, _BASE, **kwargs)

@register_model
def uniformer_tiny_synthetic_8x2(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_tiny_synthetic_8x2", pretrained, _TINY, **kwargs)


@register_model
def uniformer_lab(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_lab", pretrained, _LAB, **kwargs)


@register_model
def uniformer_lab_gggg(pretrained: bool = False, **kwargs: Any) -> UniFormer:
    return _create("uniformer_lab_gggg", pretrained, _LAB_GGGG, **kwargs)
