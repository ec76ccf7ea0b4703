"""Training that never divides 0/0: constant modalities at the shipped recipe (issue 12, item 1).

Audio and visual features are constant over the whole training set (silent audio, grey frames):
after standardisation they enter the model as exact zeros, so the first weight-normalised conv of
their TCNs never gets a gradient and Adam's weight decay (params.yaml's 1e-3) shrinks its direction
``v`` towards 0 (~1,100 steps at lr 1e-3 until ``||v||`` underflows; torch's weight norm then computes
``0/0``). The run uses params.yaml's fusion and train sections as shipped; only sizes that do not
enter the mechanism are small (window, TCN width and depth, recursions, feature dims, video count) and the run is fixed
at 30 epochs of ~100 steps (no early stop) so that it passes the underflow point.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch

from fusion.data import load_videos
from fusion.train import train_model
from pipeline.core.params import load_params
from tests.synthetic import GAIN, SMOOTH, write_dataset

MODS = ("audio", "visual", "text")
DIMS = {"audio": 128, "visual": 128, "text": 12}  # VGGish-wide audio: torch underflows at ~950 steps
EPOCHS = 30
SMALL_FUSION = {"window": 16, "stride": 8, "recursions": 1, "tcn_channels": {m: (8,) for m in MODS}}  # sizes
MIN_CCC = 0.5


def _text_only_labels(videos, direction):
    """Valence from the words alone: ``tanh(GAIN * causal mean of (text features . direction))``."""
    for v in videos:
        z = v.features["text"] @ direction  # [T]; 0 where a frame has no word
        c = np.concatenate([[0.0], np.cumsum(z)])
        t = np.arange(len(z))
        lo = np.maximum(0, t - SMOOTH + 1)
        v.labels[:, 0] = np.tanh(GAIN * (c[t + 1] - c[lo]) / (t + 1 - lo))


@pytest.fixture(scope="module")
def constant_av(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    ids = write_dataset(root, {"train": 10, "validation": 3}, n_frames=300, dims=DIMS, seed=3)
    train = load_videos(ids["train"], MODS, ("valence",), root)
    val = load_videos(ids["validation"], MODS, ("valence",), root)
    direction = np.random.default_rng(0).normal(size=DIMS["text"]) / math.sqrt(DIMS["text"])
    for v in train + val:
        v.features["audio"][:] = 0.3  # silent audio: one constant vector everywhere
        v.features["visual"][:] = -1.0  # grey frames
    _text_only_labels(train + val, direction)
    return train, val


def test_constant_modalities_train_30_epochs_at_shipped_params(constant_av):
    params = load_params("params.yaml")
    assert params.train.weight_decay > 0 and params.fusion.modalities == MODS  # the shipped recipe
    fusion = dataclasses.replace(params.fusion, **SMALL_FUSION)
    train = dataclasses.replace(params.train, epochs=EPOCHS, early_stop=0, device="cpu", threads=1)
    train_videos, val_videos = constant_av
    result = train_model(fusion, train, train_videos, val_videos, ("valence",))

    assert len(result.history) == EPOCHS
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_ccc"]) for row in result.history)
    for name, value in result.model.state_dict().items():
        assert torch.isfinite(value).all(), name
    # weight decay really drove the unused direction to (or near) 0: the case torch divides 0/0 on
    v = result.model.tcn["audio"].network[0].conv1.parametrizations.weight.original1
    assert v.norm().item() < 1e-6
    assert result.val_metrics["ccc"]["valence"] >= MIN_CCC, result.history


def test_text_only_without_weight_decay_stays_stable(constant_av):
    """Issue 12 item 3: the demo recipe (lr 1e-3) with ``train.weight_decay: 0`` on words-only data
    does not collapse (the reported run peaked at epoch 2 and fell to CCC ~0 from epoch 4 on, i.e.
    after ~1,500 steps at lr 1e-3; this run makes ~1,400)."""
    params = load_params("params.yaml")
    fusion = dataclasses.replace(params.fusion, modalities=("text",), **SMALL_FUSION)
    train = dataclasses.replace(params.train, weight_decay=0.0, epochs=EPOCHS, early_stop=0, device="cpu",
                                threads=1)
    train_videos, val_videos = constant_av
    result = train_model(fusion, train, train_videos, val_videos, ("valence",))
    scores = [row["val_ccc"] for row in result.history]
    assert all(math.isfinite(s) for s in scores), scores
    best = max(scores)
    assert best >= MIN_CCC, scores
    assert min(scores[-5:]) >= 0.8 * best, scores  # no collapse after the peak
