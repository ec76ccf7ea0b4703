"""Causal dilated TCN: shapes, causality, receptive field, residual projection."""

import pytest
import torch

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


def test_cpu_gradients_equal_the_float64_reference():
    """float32 on CPU runs the TCN's own causal-conv backward (fusion.tcn.CausalConv); float64 runs
    torch's. Both give the same input and parameter gradients (float32 rounding apart)."""
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
