"""Video-level accuracy with the official multi-view protocol (views' raw logits summed).

``evaluate_model`` runs a model over a loader whose items are one view ``(C, T, H, W)`` or ``V``
views ``(V, C, T, H, W)`` of a video and sums the views' raw logits per video, as SlowFast's
``ENSEMBLE_METHOD sum``; ``compute_metrics`` turns video-level logits into top-1/top-5,
per-class accuracy and the confusion matrix. Under ``torchrun`` videos are sharded
``rank::world`` and gathered back in dataset order, so each is counted once.

Both the training run's validation and final test (``uniformer.train``) and the evaluation CLI
(``python -m uniformer.evaluate``) call this module, which imports neither of them. It also holds
the 95 % intervals (Student-t of a mean, Wilson of an accuracy) that the ablation and the
redundancy analysis report, so both use one rule.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from uniformer.device import autocast
from uniformer.errors import UniformerLabError

__all__ = ["EvalResult", "compute_metrics", "evaluate_model", "t_interval", "t_quantile_975", "time_reversal",
           "welch_interval", "wilson_interval"]


@dataclass
class EvalResult:
    """Video-level metrics; ``logits`` are the view-summed logits in dataset order."""

    top1: float
    top5: float
    loss: float  # mean cross-entropy of the single views
    num_videos: int
    mean_class_acc: float
    per_class_acc: list[float]  # NaN where a class has no video
    support: list[int]
    confusion: torch.Tensor  # (K, K) int64, rows = true class, columns = predicted
    logits: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)

    def to_dict(self, classes: Sequence[str] | None = None, confusion: bool = False) -> dict[str, Any]:
        names = list(classes) if classes else [str(i) for i in range(len(self.support))]
        out: dict[str, Any] = {
            "top1": self.top1,
            "top5": self.top5,
            "loss": self.loss,
            "num_videos": self.num_videos,
            "mean_class_acc": self.mean_class_acc,
            "per_class": [
                {"class": names[i], "support": self.support[i],
                 "top1": None if self.support[i] == 0 else self.per_class_acc[i]}
                for i in range(len(self.support))
            ],
        }
        if confusion:
            out["confusion"] = self.confusion.tolist()
        return out


def compute_metrics(logits: torch.Tensor, labels: torch.Tensor, view_loss: float = float("nan")) -> EvalResult:
    """Top-1/top-5, per-class accuracy and confusion from video-level ``logits`` ``(N, K)``."""
    n, k = logits.shape
    labels = labels.long()
    if n == 0:
        raise UniformerLabError("There are no videos to evaluate.")
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise UniformerLabError(f"A label is outside the model's {k} classes; check the list file and the model.")
    pred = logits.argmax(1)
    correct = pred == labels
    top5 = (logits.topk(min(5, k), dim=1).indices == labels[:, None]).any(1)
    confusion = torch.bincount(labels * k + pred, minlength=k * k).reshape(k, k)
    support = confusion.sum(1)
    per_class = torch.where(support > 0, confusion.diagonal() / support.clamp(min=1), torch.nan)
    seen = support > 0
    return EvalResult(
        top1=float(correct.double().mean()),
        top5=float(top5.double().mean()),
        loss=view_loss,
        num_videos=n,
        mean_class_acc=float(per_class[seen].double().mean()),
        per_class_acc=[float(v) for v in per_class],
        support=[int(v) for v in support],
        confusion=confusion,
        logits=logits,
        labels=labels,
    )


def time_reversal(confusion: torch.Tensor, classes: Sequence[str],
                  pairs: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    """The arrow of time, from a confusion matrix: on classes that are each other played backwards
    (the generators' ``PAIRS``), ``pair_found`` is the share of their clips predicted as either class
    of the true pair, and ``order_given_pair`` the share of those predicted as the right one (0.5:
    the model sees the pair but not the order). Pooled over the pairs present in ``classes`` and per
    pair; None when ``classes`` hold no pair. A score is None where it has no clip to count."""
    index = {c: i for i, c in enumerate(classes)}
    rows, found_all, right_all, n_all = [], 0, 0, 0
    for a, b in dict.fromkeys(pairs):  # a pair listed twice counts once
        if a not in index or b not in index:
            continue
        i, j = index[a], index[b]
        n = int(confusion[i].sum() + confusion[j].sum())
        right = int(confusion[i, i] + confusion[j, j])
        found = right + int(confusion[i, j] + confusion[j, i])
        rows.append({"pair": [a, b], "n": n, "pair_found": found / n if n else None,
                     "order_given_pair": right / found if found else None})
        found_all, right_all, n_all = found_all + found, right_all + right, n_all + n
    if not rows:
        return None
    return {"pair_found": found_all / n_all if n_all else None,
            "order_given_pair": right_all / found_all if found_all else None, "n": n_all, "pairs": rows}


def _batch_parts(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, Mapping):
        clips = batch.get("clip", batch.get("video", batch.get("frames")))
        labels = batch.get("label", batch.get("target"))
    else:
        clips, labels = batch[0], batch[1]
    return clips, torch.as_tensor(labels)


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    num_classes: int | None = None,
    amp_dtype: torch.dtype | None = None,
    env: Any = None,
    progress: bool = False,
    desc: str = "eval",
) -> EvalResult:
    """Evaluate ``model`` on ``loader``; items are ``(clip, label)`` with clip ``(C, T, H, W)``
    (one view) or ``(V, C, T, H, W)`` (V views whose raw logits are summed, as SlowFast's
    ``ENSEMBLE_METHOD sum``). With a distributed ``env`` every rank returns the full result."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    loss_sum, loss_n = 0.0, 0
    batches = loader
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
    amp = autocast(device, amp_dtype)
    for batch in batches:
        clips, labels = _batch_parts(batch)
        clips = clips.to(device, non_blocking=True).float()
        labels = labels.to(device).long()
        views = 1
        if clips.ndim == 6:
            views = clips.shape[1]
            clips = clips.flatten(0, 1)
        elif clips.ndim != 5:
            raise UniformerLabError(f"Expected clips of shape (B[, V], C, T, H, W), got {tuple(clips.shape)}.")
        with amp:
            out = model(clips)
        out = out.float().reshape(labels.shape[0], views, -1)
        loss_sum += float(F.cross_entropy(out.flatten(0, 1), labels.repeat_interleave(views), reduction="sum"))
        loss_n += out.shape[0] * views
        all_logits.append(out.sum(1).cpu())
        all_labels.append(labels.cpu())
    k = num_classes or (all_logits[0].shape[1] if all_logits else 0)
    logits = torch.cat(all_logits) if all_logits else torch.zeros(0, k)
    labels = torch.cat(all_labels) if all_labels else torch.zeros(0, dtype=torch.long)
    if env is not None and getattr(env, "distributed", False):
        import torch.distributed as dist

        gathered: list[Any] = [None] * env.world_size
        dist.all_gather_object(gathered, (logits, labels, loss_sum, loss_n))
        # ranks hold videos rank, rank + W, ...: interleave back into dataset order
        order = _interleave([g[0] for g in gathered]), _interleave([g[1] for g in gathered])
        logits, labels = order
        loss_sum = sum(g[2] for g in gathered)
        loss_n = sum(g[3] for g in gathered)
    model.train(was_training)
    return compute_metrics(logits, labels, loss_sum / loss_n if loss_n else float("nan"))


def _interleave(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inverse of sharding ``rank::world``: element i of rank r is dataset item ``i * W + r``."""
    total = sum(p.shape[0] for p in parts)
    if total == 0:
        return torch.cat(list(parts))
    out = torch.empty((total, *parts[0].shape[1:]), dtype=parts[0].dtype)
    w = len(parts)
    for r, p in enumerate(parts):
        out[r::w][: p.shape[0]] = p
    return out


# ---------------------------------------------------------------- 95 % intervals of accuracies and means
# Two-sided 95 % Student-t quantiles t_{0.975, dof} for dof 1..30 (beyond: normal 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t_quantile_975(dof: float) -> float:
    """Two-sided 95 % quantile of Student's t with ``dof`` degrees of freedom: the table for whole
    numbers up to 30, else solved from the t distribution (a fractional ``dof`` is Welch's)."""
    if dof < 1:
        raise ValueError("a t interval needs at least two samples (dof >= 1).")
    if dof == int(dof) and dof <= len(_T975):
        return _T975[int(dof) - 1]
    lo, hi = 1.0, 13.0  # the quantile falls as dof grows: t(1) = 12.706 bounds it
    for _ in range(60):  # bisection on the upper tail, to ~1e-16
        mid = (lo + hi) / 2
        if _t_upper_tail(mid, dof) > 0.025:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _t_upper_tail(t: float, dof: float) -> float:
    """P(T > t) for t >= 0: half the regularised incomplete beta I_x(dof/2, 1/2), x = dof/(dof+t^2)."""
    return 0.5 * _betainc(dof / 2, 0.5, dof / (dof + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-15:
            break
    return front * (f - 1.0)


def wilson_interval(correct: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``correct / n`` (clips right out of ``n``)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """Student-t 95 % interval of the mean of ``values`` (None below two values)."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def welch_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float] | None:
    """95 % interval of ``mean(a) - mean(b)`` for unequal variances (Welch), and its
    Welch-Satterthwaite degrees of freedom; None unless both have two or more values."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1) / na
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1) / nb
    se = math.sqrt(va + vb)
    dof = float(na + nb - 2) if se == 0 else max(1.0, (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)))
    half = t_quantile_975(dof) * se
    return ma - mb - half, ma - mb + half, dof

