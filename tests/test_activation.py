"""fusion.activation: the in-place activations equal torch's compositions, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from fusion.activation import leaky_relu_dropout, tanh_relu
from fusion.dropout import dropout_mask

P = 0.4


def z_values(seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(4, 6, 1, 50, generator=g, dtype=torch.float64) * 2
    z[0, 0, 0, :5] = 0.0  # the kink itself
    return z


def fused_and_reference(fused, reference, z):
    """(value, dL/dz) of ``fused`` on a non-leaf copy of z, and of ``reference`` (torch's ops)."""
    results = []
    for fn in (fused, reference):
        leaf = z.clone().requires_grad_()
        out = fn(leaf * 1.0)  # a fresh non-leaf, as a product would be
        weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        (out * weights).sum().backward()
        results.append((out.detach(), leaf.grad))
    return results


@pytest.mark.parametrize("slope", [0.0, 0.01])
@pytest.mark.parametrize("with_mask", [False, True])
def test_leaky_relu_dropout_equals_dropout_of_leaky_relu(slope, with_mask):
    z = z_values()
    torch.manual_seed(0)
    mask = dropout_mask(z.float(), P).double() if with_mask else None
    (got, got_grad), (want, want_grad) = fused_and_reference(
        lambda x: leaky_relu_dropout(x, slope, mask),
        lambda x: F.leaky_relu(x, slope) * (1.0 if mask is None else mask),
        z,
    )
    assert torch.equal(got, want)
    assert torch.allclose(got_grad, want_grad, rtol=1e-15, atol=0)  # (g * slope) * m vs (g * m) * slope
    if with_mask:
        assert (mask == 0).any() and (got_grad[mask == 0] == 0).all()


def test_tanh_relu_equals_relu_of_tanh():
    z = z_values(seed=1)
    reference = lambda x: torch.relu(torch.tanh(x))  # noqa: E731
    (got, got_grad), (want, want_grad) = fused_and_reference(tanh_relu, reference, z)
    assert torch.equal(got, want)
    assert torch.allclose(got_grad, want_grad, rtol=0, atol=1e-15)
    assert (got_grad[z <= 0] == 0).all() and (got_grad[z > 0] != 0).all()


def test_they_overwrite_their_input_and_run_without_autograd():
    z = torch.randn(3, 5)
    out = tanh_relu(z)
    assert out.data_ptr() == z.data_ptr() and (z >= 0).all()
    with torch.no_grad():
        y = torch.randn(3, 5)
        assert torch.equal(leaky_relu_dropout(y.clone(), 0.01), F.leaky_relu(y, 0.01))
