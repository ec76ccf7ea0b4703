"""Concordance correlation coefficient (the paper's eq. 15) as metric and ``1 - CCC`` as loss (eq. 16).

    CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)

with *population* statistics (divide by N, not N - 1). Frames without a label never enter either:
a label of NaN (Aff-Wild2's -5 after ingestion) or ``mask == False`` excludes the frame.

- :func:`ccc_loss` (torch, differentiable): the mean over windows of ``1 - CCC`` of each window,
  as the official code trains (``train.loss: window``); a window with fewer than ``MIN_FRAMES``
  labelled frames is left out. :func:`batch_ccc_loss` (``train.loss: batch``): ``1 - CCC`` of all
  labelled frames of the batch concatenated (per target), the challenge metric on a batch: it
  scores the level of each window against the others, which the per-window CCC hardly does, and
  windows with near-constant labels do not dominate its gradient (docs/training.md, "Stability").
- :func:`ccc` (numpy, float64): the metric over all labelled frames of the given arrays, e.g. all
  frames of a partition concatenated (the challenge protocol) or of one video; :class:`RunningCCC`
  the same metric over frames that arrive video by video (the streaming evaluation).
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-8  # keeps the loss finite when prediction and label are the same constant in a window
MIN_FRAMES = 2  # fewer labelled frames than this: CCC is undefined (metric: NaN; loss: window skipped)


def _valid(target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Boolean ``[...]`` of frames that enter loss/metric: label not NaN and mask (if any) True."""
    valid = ~torch.isnan(target)
    if mask is not None:
        if mask.shape != target.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} != target shape {tuple(target.shape)}")
        valid = valid & mask.bool()
    return valid


def window_ccc(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CCC of each window along the last (time) axis.

    pred, target: ``[..., K]`` (target may hold NaN = unlabelled); mask: ``[..., K]`` bool or None.
    Returns ``(ccc [...], n_valid [...])``: the masked per-window CCC (0 where fewer than
    ``MIN_FRAMES`` labelled frames) and the number of labelled frames per window.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    valid = _valid(target, mask)
    w = valid.to(pred.dtype)
    n = w.sum(-1)
    n_safe = n.clamp(min=1.0)
    y = torch.where(valid, target, torch.zeros_like(target)).to(pred.dtype)
    x = torch.where(valid, pred, torch.zeros_like(pred))
    mx = x.sum(-1) / n_safe
    my = y.sum(-1) / n_safe
    dx = (x - mx.unsqueeze(-1)) * w
    dy = (y - my.unsqueeze(-1)) * w
    var_x = (dx * dx).sum(-1) / n_safe
    var_y = (dy * dy).sum(-1) / n_safe
    cov = (dx * dy).sum(-1) / n_safe
    value = 2.0 * cov / (var_x + var_y + (mx - my) ** 2 + EPS)
    value = torch.where(n >= MIN_FRAMES, value, torch.zeros_like(value))
    return value, n


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over windows (and targets) of ``1 - CCC``; scalar, differentiable w.r.t. ``pred``.

    pred, target: ``[B, K]`` or ``[B, K, T]`` (T targets, e.g. valence and arousal; each target's
    CCC is computed per window along K); target NaN = unlabelled; mask: same shape, bool, or None.
    Windows (per target) with fewer than ``MIN_FRAMES`` labelled frames are excluded from the mean;
    if none is left the loss is ``0 * pred.sum()`` (zero, still attached to the graph).
    """
    pred, target = pred.float(), target.float()  # CCC in float32 even under autocast
    if pred.dim() == 3:  # [B, K, T] -> [B, T, K]: CCC along time for each target
        pred, target = pred.transpose(1, 2), target.transpose(1, 2)
        mask = None if mask is None else mask.transpose(1, 2)
    elif pred.dim() != 2:
        raise ValueError(f"ccc_loss expects [B, K] or [B, K, T], got shape {tuple(pred.shape)}")
    value, n = window_ccc(pred, target, mask)
    used = n >= MIN_FRAMES
    if not bool(used.any()):
        return pred.sum() * 0.0
    return (1.0 - value[used]).mean()


def batch_ccc_loss(pred: torch.Tensor, target: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """``1 - CCC`` of all labelled frames of the batch concatenated, averaged over targets; scalar.

    pred, target, mask: as :func:`ccc_loss` (``[B, K]`` or ``[B, K, T]``); the B windows of a target
    are one sequence of ``B * K`` frames. Zero (attached to the graph) with fewer than
    ``MIN_FRAMES`` labelled frames.
    """
    pred, target = pred.float(), target.float()
    if pred.dim() == 2:
        pred, target = pred.unsqueeze(-1), target.unsqueeze(-1)
        mask = None if mask is None else mask.unsqueeze(-1)
    elif pred.dim() != 3:
        raise ValueError(f"batch_ccc_loss expects [B, K] or [B, K, T], got shape {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    def frames(x: torch.Tensor) -> torch.Tensor:  # [B, K, T] -> [T, B * K]: one "window" per target
        return x.reshape(-1, x.shape[-1]).t()

    return ccc_loss(frames(pred), frames(target), None if mask is None else frames(mask))


LOSSES = {"window": ccc_loss, "batch": batch_ccc_loss}  # train.loss


def ccc(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """CCC of all labelled frames of ``pred`` vs ``target`` (any equal shapes, flattened), float64.

    target NaN or ``mask == False`` excludes a frame. Returns NaN when fewer than ``MIN_FRAMES``
    frames are labelled, or when the denominator is 0 (prediction and label the same constant).
    """
    return RunningCCC().update(pred, target, mask).value()


class RunningCCC:
    """The CCC of frames that arrive in parts (e.g. video by video), in float64.

    :meth:`update` merges a part's means, sums of squares and co-moment with Chan et al.'s
    parallel update, so :meth:`value` equals :func:`ccc` of all parts concatenated (to float
    rounding) without holding them.
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean_x = self.mean_y = 0.0
        self.sxx = self.syy = self.sxy = 0.0  # sums of squared deviations and of their products

    def update(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> RunningCCC:
        """Add the labelled frames of one part (arguments as :func:`ccc`); returns self."""
        pred = np.asarray(pred, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
        valid = ~np.isnan(target)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != target.shape:
                raise ValueError(f"mask shape {mask.shape} != target shape {target.shape}")
            valid &= mask
        x, y = pred[valid], target[valid]
        if x.size == 0:
            return self
        if not np.all(np.isfinite(x)):
            raise ValueError("predictions contain NaN/inf on labelled frames")
        b, total = x.size, self.n + x.size
        mx, my = x.mean(), y.mean()
        dx, dy = x - mx, y - my
        ddx, ddy = mx - self.mean_x, my - self.mean_y
        w = self.n * b / total
        self.sxx += float(dx @ dx) + ddx * ddx * w
        self.syy += float(dy @ dy) + ddy * ddy * w
        self.sxy += float(dx @ dy) + ddx * ddy * w
        self.mean_x += ddx * (b / total)
        self.mean_y += ddy * (b / total)
        self.n = total
        return self

    def value(self) -> float:
        """The CCC so far; NaN with fewer than ``MIN_FRAMES`` frames or a zero denominator."""
        if self.n < MIN_FRAMES:
            return float("nan")
        var_x, var_y, cov = self.sxx / self.n, self.syy / self.n, self.sxy / self.n  # population
        denom = var_x + var_y + (self.mean_x - self.mean_y) ** 2
        if denom == 0.0:
            return float("nan")
        return float(2.0 * cov / denom)
