"""Recursive joint cross-modal attention: the paper variant against eqs. (1)-(14) in the paper's
own notation (X_m is d_m x K, columns are frames), recursion, weight sharing, checks."""

import math

import pytest
import torch

from fusion.attention import RecursiveJointCrossModalAttention

K = 20
DIMS3 = {"audio": 6, "visual": 10, "text": 4}


def inputs(dims, batch=2, k=K, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, k, d, generator=g) for m, d in dims.items()}


def paper_reference(module, xs):
    """Eqs. (1)-(13) for each batch item, written in the paper's notation with the module's weights."""
    names = list(module.dims)
    d = sum(module.dims.values())
    outs = {m: [] for m in names}
    for b in range(next(iter(xs.values())).shape[0]):
        X = {m: xs[m][b].t() for m in names}  # X_m: d_m x K
        for l in range(module.recursions):
            step = module.steps[0 if module.shared_weights else l]
            stacked = torch.cat([X[m] for m in names], dim=0)  # [X_a; X_v; X_t]: d x K
            J = step.joint.weight @ stacked + step.joint.bias[:, None]  # eq. (1): d x K
            new = {}
            for m in names:
                C = torch.tanh(X[m].t() @ step.w_j[m] @ J / math.sqrt(d))  # eqs. (2-4): K x K
                H = torch.relu(X[m] @ step.w_c[m] @ C)  # eqs. (5-7): d_m x K
                new[m] = H @ step.w_h[m] + X[m]  # eqs. (8-13): d_m x K
            X = new
        for m in names:
            outs[m].append(X[m].t())
    return {m: torch.stack(v) for m, v in outs.items()}


def randomise(module, seed=0):
    """Random weights everywhere (the identity-like init would hide transposition mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
    return module


@pytest.mark.parametrize("dims", [DIMS3, {"audio": 6, "visual": 10}])
@pytest.mark.parametrize("shared", [False, True])
def test_paper_variant_follows_the_equations(dims, shared):
    module = RecursiveJointCrossModalAttention(
        dims, K, recursions=3, variant="paper", dropout=0.5, shared_weights=shared
    )
    module = randomise(module).double()
    xs = {m: x.double() for m, x in inputs(dims).items()}
    out = module(xs)
    expected = paper_reference(module, xs)
    for m in dims:
        assert out[m].shape == (2, K, dims[m])
        assert torch.allclose(out[m], expected[m], rtol=1e-9, atol=1e-9), (
            m,
            (out[m] - expected[m]).abs().max(),
        )
        assert (out[m] - xs[m]).abs().max() > 1e-3
    assert module.training  # the paper variant has no dropout: train and eval outputs agree
    assert torch.equal(module.eval()(xs)["audio"], out["audio"])


def test_paper_variant_gradients_follow_the_equations():
    """K = 20 runs time-padded to 24 inside the module: the parameters' and inputs' gradients are
    still exactly those of eqs. (1)-(13)."""
    module = randomise(RecursiveJointCrossModalAttention(DIMS3, K, recursions=2, variant="paper",
                                                         dropout=0.0)).double()
    grads = []
    for forward in (module, lambda xs: paper_reference(module, xs)):
        xs = {m: x.double().requires_grad_() for m, x in inputs(DIMS3).items()}
        module.zero_grad()
        out = forward(xs)
        weights = torch.linspace(-1, 1, 2 * K, dtype=torch.float64).view(2, K, 1)
        sum((out[m] * weights * (i + 1)).sum() for i, m in enumerate(DIMS3)).backward()
        grads.append([xs[m].grad for m in DIMS3] + [p.grad.clone() for p in module.parameters()])
    for got, want in zip(*grads):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-9), (got - want).abs().max()
    assert all(g.abs().max() > 0 for g in grads[0])


def test_paper_variant_parameter_shapes():
    module = RecursiveJointCrossModalAttention(DIMS3, K, recursions=2, variant="paper", dropout=0.0)
    d = sum(DIMS3.values())
    step = module.steps[1]
    assert step.joint.weight.shape == (d, d)
    for m, d_m in DIMS3.items():
        assert step.w_j[m].shape == (d_m, d)
        assert step.w_c[m].shape == (K, K)
        assert step.w_h[m].shape == (K, K)


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_separate_weights_by_default_shared_as_option(variant):
    separate = RecursiveJointCrossModalAttention(DIMS3, K, recursions=3, variant=variant, dropout=0.1)
    shared = RecursiveJointCrossModalAttention(
        DIMS3, K, recursions=3, variant=variant, dropout=0.1, shared_weights=True
    )
    n_sep = sum(p.numel() for p in separate.parameters())
    n_shared = sum(p.numel() for p in shared.parameters())
    assert len(separate.steps) == 3 and n_sep == 3 * n_shared
    # with separate weights the steps are initialised independently
    first, second = (dict(step.named_parameters()) for step in separate.steps[:2])
    assert any(not torch.equal(first[name], second[name]) for name in first)


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_recursion_rebuilds_joint_from_updated_features(variant):
    """l steps == applying the step modules in turn, each on the previous step's outputs."""
    module = RecursiveJointCrossModalAttention(DIMS3, K, recursions=2, variant=variant, dropout=0.3).eval()
    if variant == "paper":
        randomise(module, seed=2)
    xs = inputs(DIMS3, seed=3)
    once = module.steps[0]({m: x.transpose(0, 1).contiguous() for m, x in xs.items()})  # steps: [K, B, d_m]
    twice = module.steps[1]({m: x.contiguous() for m, x in once.items()})
    out = module(xs)
    for m in DIMS3:
        assert torch.allclose(out[m], twice[m].transpose(0, 1), atol=1e-6)
        assert not torch.allclose(out[m], once[m].transpose(0, 1), atol=1e-4)
    # the joint representation feeds every modality: changing text changes audio's output
    xs2 = dict(xs, text=xs["text"] + 1.0)
    assert not torch.allclose(module(xs2)["audio"], out["audio"], atol=1e-5)


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_gradients_reach_every_parameter(variant):
    module = RecursiveJointCrossModalAttention(DIMS3, K, recursions=2, variant=variant, dropout=0.1)
    xs = inputs(DIMS3)
    sum(v.square().sum() for v in module(xs).values()).backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_official_variant_dropout_only_in_training():
    module = RecursiveJointCrossModalAttention(DIMS3, K, recursions=1, variant="official", dropout=0.6)
    xs = inputs(DIMS3)
    module.eval()
    assert torch.equal(module(xs)["visual"], module(xs)["visual"])
    module.train()
    torch.manual_seed(0)
    a = module(xs)["visual"]
    torch.manual_seed(1)
    assert not torch.equal(a, module(xs)["visual"])


def test_keys_alias_and_checks():
    module = RecursiveJointCrossModalAttention(
        {"video": 4, "audio": 3}, K, recursions=1, variant="official", dropout=0.0
    )
    assert list(module.dims) == ["visual", "audio"]
    out = module({"audio": torch.zeros(1, K, 3), "video": torch.zeros(1, K, 4)})
    assert list(out) == ["audio", "video"]
    out = module({"visual": torch.zeros(1, K, 4), "audio": torch.zeros(1, K, 3)})
    assert list(out) == ["visual", "audio"]
    with pytest.raises(ValueError, match=r"window length K = 21 .* window = 20"):
        module({"visual": torch.zeros(1, K + 1, 4), "audio": torch.zeros(1, K + 1, 3)})
    with pytest.raises(ValueError, match="expects modalities"):
        module({"visual": torch.zeros(1, K, 4)})
    with pytest.raises(ValueError, match="feature dim 5 != 3"):
        module({"visual": torch.zeros(1, K, 4), "audio": torch.zeros(1, K, 5)})
    with pytest.raises(ValueError, match="batch sizes differ"):
        module({"visual": torch.zeros(1, K, 4), "audio": torch.zeros(2, K, 3)})
    with pytest.raises(ValueError, match="variant"):
        RecursiveJointCrossModalAttention(DIMS3, K, recursions=1, variant="other", dropout=0.0)
    with pytest.raises(ValueError, match="duplicate"):
        RecursiveJointCrossModalAttention(
            {"video": 2, "visual": 2}, K, recursions=1, variant="paper", dropout=0.0
        )
    with pytest.raises(ValueError, match="recursions"):
        RecursiveJointCrossModalAttention(DIMS3, K, recursions=0, variant="paper", dropout=0.0)
