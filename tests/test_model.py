"""The full RJCMA model: shapes, range, config round trip through a weights_only checkpoint."""

import io

import pytest
import torch

from fusion.model import RJCMA, build_model
from pipeline.core.params import FusionParams

K = 24
INPUT_DIMS = {"audio": 10, "visual": 12, "text": 14}
CHANNELS = {"audio": (8, 8), "visual": (16, 12), "text": (8, 6)}


def make_inputs(batch=3, k=K, dims=INPUT_DIMS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, k, d, generator=g) for m, d in dims.items()}


@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("modalities", [("audio", "visual", "text"), ("audio", "visual")])
def test_forward_shapes_and_range(variant, modalities):
    fusion = FusionParams(
        modalities=modalities, variant=variant, recursions=2, window=K, tcn_channels=CHANNELS
    )
    model = RJCMA(fusion, INPUT_DIMS, n_outputs=2)
    # modality dims come from the TCN outputs
    assert model.attention.dims == {m: CHANNELS[m][-1] for m in modalities}
    assert model.head.fc1.in_features == sum(CHANNELS[m][-1] for m in modalities)
    out = model(make_inputs())
    assert out.shape == (3, K, 2)
    assert out.abs().max() <= 1.0
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_checkpoint_round_trip_weights_only(variant):
    fusion = FusionParams(
        variant=variant, recursions=3, shared_weights=True, window=K, tcn_channels=CHANNELS, head_hidden=7
    )
    model = RJCMA(fusion, INPUT_DIMS, n_outputs=1)
    model.set_input_stats(
        {m: 0.5 for m in INPUT_DIMS}, {m: torch.full((d,), 2.0) for m, d in INPUT_DIMS.items()}
    )
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "config": model.config_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    rebuilt = build_model(checkpoint["config"])
    rebuilt.load_state_dict(checkpoint["model"])
    assert rebuilt.config_dict() == model.config_dict()
    assert len(rebuilt.attention.steps) == 1 and rebuilt.head.fc1.out_features == 7
    model.eval()
    rebuilt.eval()
    x = make_inputs()
    assert torch.equal(model(x), rebuilt(x))


def test_input_stats_standardise_inputs():
    fusion = FusionParams(window=K, tcn_channels=CHANNELS, recursions=1)
    model = RJCMA(fusion, INPUT_DIMS, n_outputs=1).eval()
    x = make_inputs()
    shifted = {m: 3.0 * v + 1.0 for m, v in x.items()}
    model.set_input_stats({m: 1.0 for m in x}, {m: 3.0 for m in x})
    standardised = model(shifted)
    model.set_input_stats({m: 0.0 for m in x}, {m: 1.0 for m in x})
    assert torch.allclose(standardised, model(x), atol=1e-5)
    assert not torch.allclose(model(shifted), model(x), atol=1e-3)


def test_clear_errors():
    fusion = FusionParams(window=K, tcn_channels=CHANNELS)
    with pytest.raises(ValueError, match="no input dim for modality 'text'"):
        RJCMA(fusion, {"audio": 10, "visual": 12}, 1)
    with pytest.raises(ValueError, match="tcn_channels has no entry"):
        RJCMA(FusionParams(window=K, tcn_channels={"audio": (4,), "visual": (4,)}), INPUT_DIMS, 1)
    with pytest.raises(ValueError, match="variant"):
        RJCMA(FusionParams(window=K, tcn_channels=CHANNELS, variant="nope"), INPUT_DIMS, 1)
    model = RJCMA(fusion, INPUT_DIMS, 1)
    with pytest.raises(ValueError, match="window"):
        model(make_inputs(k=K + 1))
    with pytest.raises(ValueError, match="missing input modalities"):
        model({"audio": torch.zeros(1, K, 10)})
    with pytest.raises(ValueError, match=r"expected \[B, K, 12\]"):
        model({**make_inputs(), "visual": torch.zeros(3, K, 5)})
    with pytest.raises(ValueError, match="lacks"):
        build_model({"fusion": {}})


def test_video_alias_for_visual():
    fusion = FusionParams(
        modalities=("video", "audio"), window=K, tcn_channels={"visual": (4,), "audio": (4,)}
    )
    model = RJCMA(fusion, {"video": 12, "audio": 10}, 1)
    x = make_inputs(dims={"video": 12, "audio": 10})
    assert model(x).shape == (3, K, 1)
