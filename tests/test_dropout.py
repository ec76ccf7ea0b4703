"""fusion.dropout: torch.nn.Dropout's distribution from numpy masks, in the masked tensor's layout."""

import pytest
import torch

from fusion.dropout import Dropout, dropout_mask

P = 0.3


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_each_element_is_dropped_or_scaled_with_the_right_frequency(layout):
    torch.manual_seed(0)
    x = torch.rand(8, 32, 1, 500) + 0.5  # no zeros of its own
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    y = Dropout(P).train()(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / (1 - P))  # kept elements scaled by 1 / (1 - p), in place
    n = x.numel()
    frac = kept.double().mean().item()
    assert abs(frac - (1 - P)) < 5 * ((P * (1 - P) / n) ** 0.5)  # binomial: 5 standard deviations
    # no structure along any axis: every channel and every frame keeps about 1 - p of its elements
    assert kept.double().mean(dim=(0, 2, 3)).sub(1 - P).abs().max() < 0.06
    assert kept.double().mean(dim=(0, 1, 2)).sub(1 - P).abs().max() < 0.2


def test_mask_follows_the_layout_of_the_tensor_it_masks():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 1, 9).contiguous(memory_format=torch.channels_last)
    mask = dropout_mask(x, P)
    assert mask.shape == x.shape and mask.stride() == x.stride()
    assert set(mask.unique().tolist()) <= {0.0, torch.tensor(1 / (1 - P)).item()}  # float32 scale
    assert dropout_mask(torch.randn(3, 4), P).is_contiguous()


def test_manual_seed_repeats_a_run_and_eval_is_the_identity():
    x = torch.randn(4, 50, 16)
    drop = Dropout(P).train()
    torch.manual_seed(7)
    a = drop(x)
    torch.manual_seed(7)
    b = drop(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, drop(x))  # a fresh draw without reseeding
    assert drop.eval()(x) is x
    assert Dropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)
