"""Per-modality temporal model: a causal dilated temporal convolutional network (TCN).

Level i is a residual block of two weight-normalised dilated ``Conv1d`` (kernel ``kernel``, dilation
``2**i``), each left-padded by ``(kernel - 1) * dilation`` frames so that output frame t sees only
input frames <= t (causal), followed by LeakyReLU and dropout; a 1x1 ``Conv1d`` on the residual path
when the channel count changes; LeakyReLU after the sum. The TCN ends with BatchNorm1d over the
channels. Tensors are batch-first ``[B, K, C]`` at the boundary and ``[B, C, 1, K]`` channels-last
(the same memory order, time as a 2-d convolution's width) inside.

Weight norm: ``w = g * v / max(||v||, NORM_EPS)`` per output channel (:class:`WeightNorm`, a
``torch.nn.utils.parametrize`` parametrization with torch's names ``original0`` = g, ``original1``
= v). Where ``||v|| >= NORM_EPS`` this is exactly torch's ``weight_norm`` (the official code's);
below it, where torch computes 0/0 once weight decay has shrunk an unused ``v`` to zero, the weight
is ``g * v / NORM_EPS``: finite, and 0 when ``v`` is 0.

Parameter names (``network.{i}.conv1`` / ``conv2`` / ``downsample``, ``norm``) follow the common
TCN layout so that checkpoints of the official code map 1:1 (see ``fusion/official.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from fusion.activation import leaky_relu_dropout
from fusion.dropout import Dropout

LEAKY_SLOPE = 0.01  # LeakyReLU negative slope (torch's default, as in the official TCN)
NORM_EPS = 1e-12  # weight norm: ||v|| is floored here (float32 squares of |v| < 1e-19 underflow to 0)


def weight_norm_weight(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``g [C_out, 1, 1]``, ``v [C_out, C_in, k]`` -> ``g * v / max(||v||, NORM_EPS)``."""
    norm = torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True)
    return v * (g / norm.clamp_min(NORM_EPS))


class WeightNorm(nn.Module):
    """Weight-norm parametrization (dim 0) that never divides by a zero norm; see the module docstring."""

    def forward(self, weight_g: torch.Tensor, weight_v: torch.Tensor) -> torch.Tensor:
        return weight_norm_weight(weight_g, weight_v)

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A plain weight -> ``(g, v)`` with ``g = ||weight||`` per output channel, ``v = weight``."""
        return torch.norm_except_dim(weight, 2, 0), weight


def weight_norm(conv: nn.Conv1d) -> nn.Conv1d:
    """Register :class:`WeightNorm` on ``conv.weight`` (g and v under torch's parametrization names)."""
    parametrize.register_parametrization(conv, "weight", WeightNorm(), unsafe=True)
    return conv


def causal_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` (a ``Conv1d`` with no padding of its own) applied causally on the TCN's layout:
    ``x [B, C_in, 1, K]`` -> ``[B, C_out, 1, K]``, left-padded by ``(k - 1) * dilation`` zero frames
    so that output frame t sees only input frames <= t.

    The time axis is a 2-d convolution's width and the tensors are channels-last (memory order
    ``[B, K, C]``): oneDNN's and cuDNN's channels-last kernels run it without reordering the
    activations (one conv's forward + backward 1.14-1.33x faster than ``conv1d`` on ``[B, C, K]`` at 2
    threads on the AVX-512 CPU, bench/bench_kernels.py; the whole step: docs/benchmarks.md).
    """
    dilation = conv.dilation[0]
    padded = F.pad(x, ((conv.kernel_size[0] - 1) * dilation, 0))
    weight = conv.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # as oneDNN wants it
    return F.conv2d(padded, weight, conv.bias, dilation=(1, dilation))


def pointwise_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A kernel-1 ``Conv1d`` on the TCN's layout: ``[B, C_in, 1, K]`` -> ``[B, C_out, 1, K]``, as the
    GEMM it is on the ``[B, K, C_in]`` memory (views both ways, no copies)."""
    y = F.linear(x.squeeze(2).transpose(1, 2), conv.weight.squeeze(2), conv.bias)  # [B, K, C_out]
    return y.transpose(1, 2).unsqueeze(2)


class TemporalBlock(nn.Module):
    """One causal residual level: ``[B, C_in, 1, K] -> [B, C_out, 1, K]`` (channels-last)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel - 1) * dilation  # left padding that keeps the convolution causal
        self.conv1 = weight_norm(nn.Conv1d(in_channels, out_channels, kernel, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(out_channels, out_channels, kernel, dilation=dilation))
        self.dropout = Dropout(dropout)
        self.downsample = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = causal_conv(self.conv1, x)
        y = leaky_relu_dropout(z, LEAKY_SLOPE, self.dropout.mask(z))  # in place on the conv's output
        z = causal_conv(self.conv2, y)
        y = leaky_relu_dropout(z, LEAKY_SLOPE, self.dropout.mask(z))
        residual = x if self.downsample is None else pointwise_conv(self.downsample, x)
        return F.leaky_relu_(y + residual, LEAKY_SLOPE)


class TCN(nn.Module):
    """Causal dilated TCN + BatchNorm1d: ``[B, K, input_dim] -> [B, K, channels[-1]]``.

    ``channels``: output channels per level (len = number of levels; dilation of level i = 2**i).
    """

    def __init__(self, input_dim: int, channels: tuple[int, ...], kernel: int, dropout: float):
        super().__init__()
        if input_dim < 1 or not channels or min(channels) < 1:
            raise ValueError(
                f"TCN needs input_dim >= 1 and >= 1 level of positive channels, got "
                f"input_dim={input_dim}, channels={tuple(channels)}"
            )
        if kernel < 1:
            raise ValueError(f"TCN kernel must be >= 1, got {kernel}")
        ins = (input_dim, *channels[:-1])
        self.network = nn.Sequential(
            *[
                TemporalBlock(c_in, c_out, kernel, 2**i, dropout)
                for i, (c_in, c_out) in enumerate(zip(ins, channels))
            ]
        )
        self.norm = nn.BatchNorm1d(channels[-1])
        self.output_dim = channels[-1]

    def receptive_field(self) -> int:
        """Frames of input history (including the current one) that one output frame sees."""
        return 1 + sum(2 * block.pad for block in self.network)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[B, K, input_dim]`` -> ``[B, K, channels[-1]]``."""
        batch, length, _ = x.shape
        # [B, K, C] in memory is [B, C, 1, K] channels-last: a view, no copy, either way
        y = self.network(x.contiguous().transpose(1, 2).unsqueeze(2))  # [B, C, 1, K], channels-last
        y = y.squeeze(2).transpose(1, 2)  # [B, K, C], contiguous
        # BatchNorm over the channels with statistics over B and K: on [B * K, C] as on [B, C, K]
        return self.norm(y.reshape(batch * length, -1)).view(batch, length, -1)
