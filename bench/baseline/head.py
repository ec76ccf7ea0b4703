"""FROZEN BASELINE: fusion/head.py at commit f564621, before the issue-11 speed-ups; bench/
bench_train_step.py times the current model against this copy. Do not edit.

Regression head on the concatenated attended features (the official head).

``[B, K, d] -> Linear(d, hidden) -> BatchNorm1d(hidden) over channels -> LeakyReLU(0.01)
-> Linear(hidden, n_outputs) -> tanh -> [B, K, n_outputs]`` in [-1, 1], one output per target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.01


class RegressionHead(nn.Module):
    """Per-frame regression: ``[B, K, d] -> [B, K, n_outputs]`` in [-1, 1]."""

    def __init__(self, d: int, hidden: int, n_outputs: int):
        super().__init__()
        if min(d, hidden, n_outputs) < 1:
            raise ValueError(f"head dims must be positive, got d={d}, hidden={hidden}, n_outputs={n_outputs}")
        self.fc1 = nn.Linear(d, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)  # [B, K, hidden]
        h = self.norm(h.transpose(1, 2)).transpose(1, 2)  # BatchNorm over channels
        return torch.tanh(self.fc2(F.leaky_relu(h, LEAKY_SLOPE)))  # [B, K, n_outputs]
