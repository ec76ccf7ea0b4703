"""Causal dilated TCN: shapes, causality, receptive field, residual projection."""

import pytest
import torch
import torch.nn.functional as F

from fusion.tcn import TCN

K = 80


def test_shapes_and_levels():
    tcn = TCN(input_dim=7, channels=(16, 16, 12, 12), kernel=5, dropout=0.1)
    assert tcn(torch.randn(2, K, 7)).shape == (2, K, 12)
    dilations = [block.conv1.dilation[0] for block in tcn.network]
    assert dilations == [1, 2, 4, 8]
    # 1x1 residual projection exactly where the channel count changes
    assert [block.downsample is not None for block in tcn.network] == [True, False, True, False]
    assert tcn.receptive_field() == 1 + 2 * 4 * (1 + 2 + 4 + 8)
    # weight norm via torch.nn.utils.parametrizations
    assert hasattr(tcn.network[0].conv1, "parametrizations")


@pytest.mark.parametrize("t", [0, 17, 50, K - 1])
def test_causal_change_at_t_never_moves_earlier_outputs(t):
    torch.manual_seed(0)
    tcn = TCN(input_dim=5, channels=(8, 8, 8), kernel=5, dropout=0.1)
    tcn.train()
    tcn(torch.randn(4, K, 5))  # give BatchNorm non-trivial running statistics
    tcn.eval()
    x = torch.randn(2, K, 5)
    y = tcn(x)
    x2 = x.clone()
    x2[:, t] += 3.0
    y2 = tcn(x2)
    assert torch.equal(y[:, :t], y2[:, :t])
    assert (y[:, t] - y2[:, t]).abs().max() > 1e-4  # the change does reach frame t


def test_receptive_field_bounds_the_influence():
    torch.manual_seed(1)
    tcn = TCN(input_dim=3, channels=(6, 6), kernel=3, dropout=0.0).eval()
    rf = tcn.receptive_field()  # 1 + 2 * 2 * (1 + 2) = 13
    assert rf == 13
    x = torch.randn(1, K, 3)
    x2 = x.clone()
    x2[:, 10] += 5.0
    diff = (tcn(x) - tcn(x2)).abs().amax(dim=(0, 2))
    assert diff[10 + rf - 1] > 0
    assert torch.all(diff[10 + rf :] == 0)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="channels"):
        TCN(input_dim=3, channels=(), kernel=5, dropout=0.1)
    with pytest.raises(ValueError, match="kernel"):
        TCN(input_dim=3, channels=(4,), kernel=0, dropout=0.1)


def reference_tcn(tcn: TCN, x: torch.Tensor) -> torch.Tensor:
    """The TCN written out on ``[B, C, K]`` with ``conv1d`` (the textbook layout), training-mode
    BatchNorm: an independent statement of what fusion.tcn computes on its channels-last layout."""
    y = x.transpose(1, 2)
    for block in tcn.network:
        h = y
        for conv in (block.conv1, block.conv2):
            pad = (conv.kernel_size[0] - 1) * conv.dilation[0]
            h = F.conv1d(F.pad(h, (pad, 0)), conv.weight, conv.bias, dilation=conv.dilation)
            h = F.leaky_relu(h, 0.01)
        res = y if block.downsample is None else F.conv1d(y, block.downsample.weight, block.downsample.bias)
        y = F.leaky_relu(h + res, 0.01)
    norm = tcn.norm
    return F.batch_norm(y, None, None, norm.weight, norm.bias, True, 0.0, norm.eps).transpose(1, 2)


def test_outputs_and_gradients_equal_the_conv1d_reference_in_float64():
    """The channels-last conv2d layout is the same function as conv1d on [B, C, K]: outputs and the
    input and parameter gradients agree with the written-out reference (float64, rounding apart)."""
    torch.manual_seed(0)
    tcn = TCN(input_dim=7, channels=(16, 16, 12), kernel=5, dropout=0.0).double().train()
    x = torch.randn(3, K, 7, dtype=torch.float64)
    outs, grads = [], []
    for forward in (tcn, lambda inp: reference_tcn(tcn, inp)):
        tcn.zero_grad()
        inp = x.detach().requires_grad_()
        out = forward(inp)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append([inp.grad] + [p.grad.clone() for p in tcn.parameters()])
    assert (outs[0] - outs[1]).abs().max() <= 1e-10
    for got, want in zip(*grads):
        scale = want.abs().max()
        assert scale > 0
        assert (got - want).abs().max() <= 1e-10 * scale


def test_float32_gradients_equal_float64():
    """float32 on CPU (oneDNN's channels-last kernels) gives float64's gradients to float32 rounding."""
    torch.manual_seed(0)
    ref = TCN(input_dim=7, channels=(16, 16, 12), kernel=5, dropout=0.0).double()
    tcn = TCN(input_dim=7, channels=(16, 16, 12), kernel=5, dropout=0.0)
    tcn.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    x = torch.randn(3, K, 7, dtype=torch.float64)
    grads = []
    for model, dtype in ((ref, torch.float64), (tcn, torch.float32)):
        inp = x.to(dtype).detach().requires_grad_()
        out = model(inp)
        (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum().backward()
        grads.append([inp.grad] + [p.grad for p in model.parameters()])
    for want, got in zip(*grads):
        scale = want.abs().max()
        assert scale > 0
        assert (got.double() - want).abs().max() <= 1e-5 * scale
