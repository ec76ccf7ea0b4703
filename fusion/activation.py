"""Activations (with the dropout that follows them) applied in place to a fresh product.

``z`` is the output of a convolution or matrix product that nothing else reads (their backward needs
their inputs, not their output), so the activation can overwrite it: each function here has the
forward values and the gradients of the composition torch would build from separate ops, but the
forward allocates no buffer and the backward one. On CPU every fresh large
buffer costs page faults on first touch (docs/benchmarks.md, "Training step"), and these run on every
TCN convolution and every attention product of a training step.

``mask``: a dropout mask (``fusion.dropout.dropout_mask``: 0 or ``1 / (1 - p)``), or None (no dropout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _LeakyReLUDropout(torch.autograd.Function):
    """``dropout(leaky_relu(z, slope))`` in place (slope 0: ReLU)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, slope: float, mask: torch.Tensor | None):
        out = torch.relu_(z) if slope == 0.0 else F.leaky_relu_(z, slope)
        if mask is not None:
            out.mul_(mask)
        ctx.mark_dirty(z)
        ctx.slope = slope
        ctx.save_for_backward(out, mask)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        out, mask = ctx.saved_tensors
        # out > 0 exactly where z > 0 and the element is kept; a dropped element is 0 in out and its
        # gradient is zeroed by the mask (torch's leaky_relu backward on its input: z > 0 ? 1 : slope)
        grad = torch.ops.aten.leaky_relu_backward(grad, out, ctx.slope, True)
        return (grad if mask is None else grad.mul_(mask)), None, None


class _TanhReLU(torch.autograd.Function):
    """``relu(tanh(z))`` in place."""

    @staticmethod
    def forward(ctx, z: torch.Tensor):
        out = z.tanh_().clamp_min_(0.0)
        ctx.mark_dirty(z)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, out, 0.0)  # relu's backward on its result
        return torch.ops.aten.tanh_backward.grad_input(grad, out, grad_input=grad)  # * (1 - tanh^2)


def leaky_relu_dropout(z: torch.Tensor, slope: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``dropout(leaky_relu(z, slope))`` (``slope = 0``: ReLU), overwriting ``z``; any shape."""
    return _LeakyReLUDropout.apply(z, slope, mask)


def tanh_relu(z: torch.Tensor) -> torch.Tensor:
    """``relu(tanh(z))``, overwriting ``z``; any shape."""
    return _TanhReLU.apply(z)
