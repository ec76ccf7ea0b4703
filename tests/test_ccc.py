"""CCC metric (numpy) and 1 - CCC loss (torch), eq. 15 with population statistics and a frame mask."""

import numpy as np
import pytest
import torch

from fusion.ccc import batch_ccc_loss, ccc, ccc_loss, window_ccc


def direct_ccc(x, y):
    """Eq. 15 written out with population statistics."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mx, my = x.sum() / x.size, y.sum() / y.size
    vx, vy = ((x - mx) ** 2).sum() / x.size, ((y - my) ** 2).sum() / y.size
    cxy = ((x - mx) * (y - my)).sum() / x.size
    return 2 * cxy / (vx + vy + (mx - my) ** 2)


@pytest.fixture
def series():
    rng = np.random.default_rng(0)
    y = np.sin(np.linspace(0, 6, 200)) * 0.7
    x = 0.8 * y + 0.1 + 0.2 * rng.standard_normal(200)
    return x, y


def test_known_values(series):
    _, y = series
    assert ccc(y, y) == pytest.approx(1.0)
    centred = y - y.mean()
    assert ccc(-centred, centred) == pytest.approx(-1.0)
    assert ccc(np.full_like(y, 0.3), y) == pytest.approx(0.0)


def test_agrees_with_direct_formula_and_uses_population_statistics(series):
    x, y = series
    assert ccc(x, y) == pytest.approx(direct_ccc(x, y), rel=1e-12)
    # a sample-statistics (N - 1) version differs measurably on a short series
    xs, ys = x[:5], y[:5]
    sample = 2 * np.cov(xs, ys)[0, 1] / (xs.var(ddof=1) + ys.var(ddof=1) + (xs.mean() - ys.mean()) ** 2)
    assert ccc(xs, ys) == pytest.approx(direct_ccc(xs, ys), rel=1e-12)
    assert abs(ccc(xs, ys) - sample) > 1e-4


def test_mask_and_nan_labels_exclude_frames(series):
    x, y = series
    x_bad = x.copy()
    x_bad[50:80] = 5.0  # garbage predictions on unlabelled frames
    y_nan = y.copy()
    y_nan[50:80] = np.nan
    keep = np.ones_like(y, dtype=bool)
    keep[50:80] = False
    expected = direct_ccc(np.r_[x[:50], x[80:]], np.r_[y[:50], y[80:]])
    assert ccc(x_bad, y_nan) == pytest.approx(expected, rel=1e-12)
    assert ccc(x_bad, y, mask=keep) == pytest.approx(expected, rel=1e-12)
    assert np.isnan(ccc(x, np.full_like(y, np.nan)))
    with pytest.raises(ValueError):
        ccc(x, y[:-1])


def test_torch_window_ccc_matches_numpy(series):
    x, y = series
    xt = torch.tensor(np.stack([x, 0.5 * x]), dtype=torch.float64)
    yt = torch.tensor(np.stack([y, y]), dtype=torch.float64)
    values, n = window_ccc(xt, yt)
    assert values[0].item() == pytest.approx(ccc(x, y), rel=1e-6)  # the loss adds EPS = 1e-8 below
    assert values[1].item() == pytest.approx(ccc(0.5 * x, y), rel=1e-6)
    assert n.tolist() == [200, 200]


def test_loss_is_mean_over_windows_of_one_minus_ccc_with_mask(series):
    x, y = series
    y_nan = y.copy()
    y_nan[:40] = np.nan
    pred = torch.tensor(np.stack([x, -x, x * 0]), dtype=torch.float32, requires_grad=True)
    target = torch.tensor(np.stack([y_nan, y, np.full_like(y, np.nan)]), dtype=torch.float32)
    loss = ccc_loss(pred, target)
    # window 3 has no labels: left out; window 1 uses frames 40.. only
    expected = np.mean([1 - ccc(x[40:], y[40:]), 1 - ccc(-x, y)])
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[0, :40].abs().max() == 0  # unlabelled frames get no gradient
    assert pred.grad[2].abs().max() == 0


def test_loss_with_bool_mask_and_targets_axis(series):
    x, y = series
    pred = torch.tensor(np.stack([x, x], -1)[None], dtype=torch.float32)  # [1, K, 2]
    target = torch.tensor(np.stack([y, -y], -1)[None], dtype=torch.float32)
    mask = torch.ones_like(target, dtype=torch.bool)
    mask[0, :100, 1] = False
    loss = ccc_loss(pred, target, mask)
    expected = np.mean([1 - ccc(x, y), 1 - ccc(x[100:], -y[100:])])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_loss_without_any_label_is_zero_and_differentiable():
    pred = torch.zeros(2, 10, requires_grad=True)
    loss = ccc_loss(pred, torch.full((2, 10), float("nan")))
    assert loss.item() == 0.0
    loss.backward()


def test_batch_loss_is_one_minus_the_ccc_of_the_batch_frames_per_target():
    """train.loss: batch -- the B windows of each target concatenated, unlabelled frames out."""
    rng = np.random.default_rng(3)
    pred = torch.tensor(rng.normal(size=(4, 10, 2)), dtype=torch.float32, requires_grad=True)
    target = torch.tensor(0.5 * pred.detach().numpy() + rng.normal(size=(4, 10, 2)), dtype=torch.float32)
    target[0, :3, 0] = float("nan")
    mask = torch.ones(4, 10, 2, dtype=torch.bool)
    mask[3, 5:] = False
    loss = batch_ccc_loss(pred, target, mask)
    p, t, m = pred.detach().numpy(), target.numpy(), mask.numpy()
    expected = np.mean([1 - ccc(p[..., k], t[..., k], m[..., k]) for k in range(2)])
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad[3, 5:] == 0).all()
    assert batch_ccc_loss(pred[..., 0], target[..., 0]).item() == pytest.approx(
        1 - ccc(p[..., 0], t[..., 0]), rel=1e-5)
    # whole windows shifted apart: the batch's frames disagree (no NaN-label frame in the sum)
    shifted = torch.nan_to_num(target) + torch.arange(4.0).view(4, 1, 1)
    assert batch_ccc_loss(shifted, torch.nan_to_num(target)).item() > 0.5


def test_running_ccc_equals_the_ccc_of_the_concatenation():
    from fusion.ccc import RunningCCC

    rng = np.random.default_rng(2)
    parts = [(rng.normal(size=n), rng.normal(size=n) * 0.5 + 0.3) for n in (1, 7, 40, 300)]
    for _, y in parts[1:]:
        y[::5] = np.nan  # unlabeled frames
    running = RunningCCC()
    for p, y in parts:
        running.update(p, y)
    x = np.concatenate([p for p, _ in parts])
    y = np.concatenate([y for _, y in parts])
    assert running.value() == pytest.approx(ccc(x, y), abs=1e-12)
    assert np.isnan(RunningCCC().update(np.zeros(3), np.zeros(3)).value())  # constant: undefined
