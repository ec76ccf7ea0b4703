"""The learning-rate schedule: linear warm-up per step, then reduce-on-plateau per epoch.

Written out explicitly (nanoGPT-style) instead of chaining torch schedulers, so that the lr of
every step is one readable function of the state: the trainer sets ``param_group["lr"]`` itself.

- :func:`warmup_lr`: step ``i`` of the first ``warmup_steps`` steps trains at
  ``base_lr * (i + 1) / warmup_steps``; afterwards at ``base_lr``.
- :func:`official_warmup_lr`: the authors' ``MyWarmupScheduler`` (``train.warmup: official``): in
  warm-up epoch ``e`` (0-based) batch ``b`` (0-based) of ``n`` trains at
  ``base_lr * b * (e + 1) / (n * E * E)`` with ``E = warmup_epochs`` (5 * 5 in their code): a
  saw-tooth that restarts every epoch and peaks at ~``base_lr / E`` in the last warm-up epoch;
  afterwards ``base_lr``.
- :class:`Plateau`: torch's ``ReduceLROnPlateau`` in ``max`` mode (validation CCC), threshold 0,
  no cooldown: after more than ``patience`` epochs without a new best, ``lr *= factor``, never
  below ``min_lr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def warmup_lr(step: int, warmup_steps: int, base_lr: float) -> float:
    """The lr of optimisation step ``step`` (0-based) under linear warm-up to ``base_lr``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return base_lr


def official_warmup_lr(epoch: int, batch: int, n_batches: int, warmup_epochs: int,
                       base_lr: float) -> float:
    """The lr of batch ``batch`` of epoch ``epoch`` (both 0-based, ``n_batches`` per epoch) under
    the authors' saw-tooth warm-up over ``warmup_epochs`` epochs, then ``base_lr``."""
    if epoch < warmup_epochs:
        return base_lr * batch * (epoch + 1) / (n_batches * warmup_epochs * warmup_epochs)
    return base_lr


@dataclass
class Plateau:
    """Reduce-on-plateau state for a metric to maximise. Call :meth:`step` once per epoch."""

    lr: float
    factor: float
    patience: int
    min_lr: float
    best: float = -math.inf
    bad_epochs: int = 0

    def step(self, metric: float) -> float:
        """Record one epoch's ``metric`` (NaN counts as no improvement); return the new lr."""
        if not math.isnan(metric) and metric > self.best:
            self.best = metric
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.lr = max(self.lr * self.factor, self.min_lr)
                self.bad_epochs = 0
        return self.lr
