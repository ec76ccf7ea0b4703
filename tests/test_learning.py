"""The learning test: the trainer learns a target that needs all three modalities over time.

Synthetic per-frame features (tests/synthetic.py), written as real HDF5 caches and read back by the
trainer's reader: valence and arousal are tanh of a causally smoothed mix of slow latents, one per
modality (text held per word, absent between words), so no single modality or pair suffices. The
models train on some sequences, select epochs on others and are scored on held-out sequences.
Small K, TCN and a higher lr than the paper's keep each run within a few seconds of CPU; all set
through params (``LEARNING_PARAMS``), not inline.
"""

import numpy as np
import pytest
import torch

from fusion.ccc import ccc
from fusion.data import open_videos
from fusion.evaluate import predict_videos
from fusion.train import train_model
from pipeline.core.params import params_from_dict
from tests.synthetic import write_dataset

TARGETS = ("valence", "arousal")
MODS = ("audio", "visual", "text")
LEARNING_PARAMS = {
    "fusion": {"modalities": list(MODS), "recursions": 2, "window": 32, "stride": 16,
               "tcn_channels": {m: [16, 16] for m in MODS}, "tcn_kernel": 3, "tcn_dropout": 0.0,
               "attention_dropout": 0.1},
    "train": {"targets": list(TARGETS), "joint": True, "batch_size": 8, "lr": 3e-3, "warmup_epochs": 1,
              "epochs": 12, "plateau_patience": 2, "early_stop": 4, "seed": 0, "device": "cpu",
              "threads": 1},
}
MIN_CCC = 0.9


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    ids = write_dataset(root, {"train": 12, "validation": 4, "heldout": 4}, n_frames=[160, 200, 240],
                        seed=0, unlabeled_fraction=0.05)
    return {part: open_videos(v, MODS, TARGETS, root) for part, v in ids.items()}


def _heldout_ccc(params, splits) -> dict[str, float]:
    result = train_model(params.fusion, params.train, splits["train"], splits["validation"], TARGETS)
    held = splits["heldout"]
    with torch.no_grad():
        preds = predict_videos(result.model, held, params.fusion.window, params.fusion.stride)
    y = np.concatenate([v.labels for v in held])
    p = np.concatenate([preds[v.id] for v in held])
    return {t: ccc(p[:, j], y[:, j]) for j, t in enumerate(TARGETS)}


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_learns_target_needing_all_modalities(variant, splits):
    raw = {**LEARNING_PARAMS, "fusion": {**LEARNING_PARAMS["fusion"], "variant": variant}}
    scores = _heldout_ccc(params_from_dict(raw), splits)
    assert min(scores.values()) >= MIN_CCC, scores


def test_two_modalities_do_not_suffice(splits):
    """The control: the same budget without text stays well below the bar, so the test above
    really measures fusion of all three modalities."""
    raw = {**LEARNING_PARAMS, "fusion": {**LEARNING_PARAMS["fusion"], "modalities": ["audio", "visual"]}}
    scores = _heldout_ccc(params_from_dict(raw), splits)
    assert max(scores.values()) < 0.85, scores
