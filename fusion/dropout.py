"""Dropout whose CPU masks come from numpy's PCG64 instead of torch's Bernoulli sampler.

Same distribution as :class:`torch.nn.Dropout` (each element kept with probability ``1 - p`` and
scaled by ``1 / (1 - p)``; kept iff a float32 uniform in [0, 1) is >= p, resolution 2**-24), but on CPU
the mask costs about half of torch's ``bernoulli_`` + ``div_`` + ``mul`` (bench/bench_train_step.py).
Each call seeds a fresh generator with a number drawn from torch's default CPU generator, so
``torch.manual_seed`` still makes a run repeat exactly. Other devices use ``F.dropout``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEED_BITS = 62  # bits of the per-call numpy seed drawn from torch's generator


def dropout_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """A float32 CPU tensor of ``like``'s shape and memory layout (``torch.empty_like``: a
    channels-last ``like`` gets a channels-last mask, so ``like * mask`` runs as one contiguous pass)
    holding ``1 / (1 - p)`` (kept) and 0 (dropped), each kept with probability ``1 - p``."""
    seed = int(torch.randint(2**SEED_BITS, (1,)).item())
    mask = torch.empty_like(like, dtype=torch.float32, device="cpu")
    flat = mask.as_strided((mask.numel(),), (1,))  # empty_like is dense: its storage in memory order
    np.random.default_rng(seed).random(out=flat.numpy(), dtype=np.float32)
    flat.ge_(p).mul_(1.0 / (1.0 - p))
    return mask


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)`` on ``[...]`` tensors (identity in eval mode or for p = 0)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def _identity(self) -> bool:
        return not self.training or self.p == 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._identity():
            return x
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return F.dropout(x, self.p, True)
        return x * dropout_mask(x, self.p)

    def mask(self, like: torch.Tensor) -> torch.Tensor | None:
        """The mask :meth:`forward` would multiply ``like`` by (for the fused activations of
        fusion/activation.py), or None where forward is the identity (eval mode, p = 0). On CPU in
        float32 :func:`dropout_mask`; elsewhere torch's Bernoulli sampler in ``like``'s dtype."""
        if self._identity():
            return None
        if like.device.type != "cpu" or like.dtype != torch.float32:
            return torch.empty_like(like).bernoulli_(1.0 - self.p).div_(1.0 - self.p)
        return dropout_mask(like, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
