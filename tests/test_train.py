"""The trainer, lr schedule, checkpoints, evaluation outputs and the `train` stage on real caches."""

import csv
import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch
import yaml

from fusion.checkpoint import load_checkpoint, save_checkpoint
from fusion.data import ArrayVideo, open_videos
from fusion.diverge import Diverged
from fusion.evaluate import partition_metrics, predict_video, predict_videos
from fusion.lr import Plateau, warmup_lr
from fusion.train import run_targets, train_model
from pipeline.core import layout
from pipeline.core.params import FusionParams, Params, TrainParams, to_dict
from stages import train as train_stage
from tests.synthetic import write_dataset

MODS = ("audio", "visual", "text")
DIMS = {"audio": 6, "visual": 8, "text": 5}
TINY_FUSION = FusionParams(window=16, stride=8, recursions=1, tcn_channels={m: (8,) for m in MODS},
                           tcn_kernel=3, tcn_dropout=0.1, attention_dropout=0.2)
TINY_TRAIN = TrainParams(batch_size=4, lr=3e-3, epochs=3, warmup_epochs=1, early_stop=0, device="cpu",
                         threads=1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one torch thread is fastest and immune to a busy machine's oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    ids = write_dataset(root, {"train": 4, "validation": 2}, n_frames=[40, 29, 57], dims=DIMS, seed=5,
                        unlabeled_fraction=0.1)
    return root, ids


@pytest.fixture(scope="module")
def videos(data):
    root, ids = data
    return (open_videos(ids["train"], MODS, ("valence",), root),
            open_videos(ids["validation"], MODS, ("valence",), root))


def test_warmup_is_linear_then_flat():
    lrs = [warmup_lr(i, 4, 1e-3) for i in range(6)]
    np.testing.assert_allclose(lrs, [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert warmup_lr(0, 0, 1e-3) == 1e-3


def test_plateau_matches_torch_reduce_lr_on_plateau():
    metrics = [0.1, 0.2, 0.2, 0.15, 0.19, 0.1, 0.05, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3] + [0.0] * 20
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-5)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=2,
                                                     threshold=0.0, min_lr=1e-8)
    ours = Plateau(lr=1e-5, factor=0.1, patience=2, min_lr=1e-8)
    for m in metrics:
        ref.step(m)
        assert ours.step(m) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
    assert ours.lr == pytest.approx(1e-8)
    assert Plateau(lr=1.0, factor=0.5, patience=0, min_lr=0.0).step(float("nan")) == 0.5


def test_run_targets():
    assert run_targets(TINY_TRAIN, "arousal") == ("arousal",)
    assert run_targets(dataclasses.replace(TINY_TRAIN, joint=True), "both") == ("valence", "arousal")
    with pytest.raises(ValueError, match="joint"):
        run_targets(TINY_TRAIN, "both")
    with pytest.raises(ValueError, match="unknown target"):
        run_targets(TINY_TRAIN, "dominance")


def test_seeded_cpu_runs_repeat_exactly(videos):
    train, val = videos
    a = train_model(TINY_FUSION, TINY_TRAIN, train, val, ("valence",))
    b = train_model(TINY_FUSION, TINY_TRAIN, train, val, ("valence",))
    assert a.history == b.history
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = train_model(TINY_FUSION, dataclasses.replace(TINY_TRAIN, seed=1), train, val, ("valence",))
    assert c.history != a.history


def test_history_best_weights_and_early_stop(videos):
    train, val = videos
    cfg = dataclasses.replace(TINY_TRAIN, epochs=30, early_stop=2, lr=1e-2, warmup_epochs=2)
    result = train_model(TINY_FUSION, cfg, train, val, ("valence",))
    rows = result.history
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    assert set(rows[0]) == {"epoch", "lr", "train_loss", "val_ccc", "val_ccc_valence", "best"}
    assert rows[0]["lr"] < rows[1]["lr"] <= cfg.lr  # warm-up over the first 2 epochs
    best = max(r["val_ccc"] for r in rows)
    assert rows[result.best_epoch - 1]["val_ccc"] == best
    if result.stopped == "early stop":
        assert len(rows) - result.best_epoch == cfg.early_stop
    else:
        assert len(rows) == cfg.epochs
    # the returned model carries the best epoch's weights
    again = partition_metrics(val, predict_videos(result.model, val, 16, 8, 4), ("valence",))
    assert again["ccc_mean"] == pytest.approx(best, abs=1e-6)
    assert result.val_metrics["ccc_mean"] == pytest.approx(best, abs=1e-12)


def test_training_set_statistics_live_in_the_model(videos):
    train, val = videos
    result = train_model(TINY_FUSION, dataclasses.replace(TINY_TRAIN, epochs=1), train, val, ("valence",))
    x = np.concatenate([v.features["visual"] for v in train])
    np.testing.assert_allclose(result.model.input_mean_visual.numpy(), x.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.model.input_std_visual.numpy(), x.std(0), rtol=1e-4)
    raw = train_model(dataclasses.replace(TINY_FUSION, normalize=False),
                      dataclasses.replace(TINY_TRAIN, epochs=1), train, val, ("valence",))
    assert (raw.model.input_mean_visual == 0).all() and (raw.model.input_std_visual == 1).all()


def test_joint_model_has_two_outputs(data):
    root, ids = data
    targets = ("valence", "arousal")
    train = open_videos(ids["train"], MODS, targets, root)
    val = open_videos(ids["validation"], MODS, targets, root)
    result = train_model(TINY_FUSION, dataclasses.replace(TINY_TRAIN, epochs=1, joint=True), train, val,
                         targets)
    assert result.val_preds[val[0].id].shape == (val[0].n_frames, 2)
    assert set(result.history[0]) >= {"val_ccc_valence", "val_ccc_arousal"}
    assert result.history[0]["val_ccc"] == pytest.approx(
        (result.history[0]["val_ccc_valence"] + result.history[0]["val_ccc_arousal"]) / 2)


def test_checkpoint_roundtrip_weights_only(videos, tmp_path):
    train, val = videos
    result = train_model(TINY_FUSION, dataclasses.replace(TINY_TRAIN, epochs=1), train, val, ("valence",))
    params = Params(fusion=TINY_FUSION, train=TINY_TRAIN)
    path = save_checkpoint(tmp_path / "ck.pt", result.model, targets=("valence",), params=params,
                           info={"fold": 0})
    raw = torch.load(path, weights_only=True)
    assert raw["model_config"]["input_dims"] == DIMS and raw["targets"] == ["valence"]
    assert (raw["window"], raw["stride"]) == (16, 8)
    # the model's, the recipe's and the feature params; not data/report (changing them must not retrain)
    assert raw["params"] == {k: v for k, v in to_dict(params).items() if k not in ("data", "report")}
    assert "input_mean_audio" in raw["model"]  # the normalisation statistics
    model, ckpt = load_checkpoint(path)
    assert not model.training
    for v in val:
        np.testing.assert_array_equal(predict_video(model, v.features, 16, 8),
                                      predict_video(result.model, v.features, 16, 8))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def _write_params(path, **train):
    raw = {"fusion": to_dict(TINY_FUSION), "train": to_dict(dataclasses.replace(TINY_TRAIN, **train))}
    path.write_text(yaml.safe_dump(raw))
    return path


def test_train_stage_outputs(data, tmp_path):
    root, ids = data
    params = _write_params(tmp_path / "params.yaml", epochs=2)
    out = tmp_path / "results"
    argv = ["--fold", "0", "--target", "arousal", "--params", str(params), "--data", str(root),
            "--out", str(out)]
    assert train_stage.main(argv) == 0
    run = layout.train_dir(0, "arousal", out)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "curves.csv", "curves.json",
                                                     "curves.png", "metrics.json", "predictions"]
    metrics = json.loads((run / "metrics.json").read_text())
    curves = json.loads((run / "curves.json").read_text())
    assert len(curves) == metrics["epochs_run"] == 2
    assert metrics["val_ccc"] == pytest.approx(max(r["val_ccc"] for r in curves))
    assert set(metrics["per_video"]) == set(ids["validation"])
    with open(run / "curves.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2]
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = open_videos(ids["validation"], MODS, ("arousal",), root)
    for v in labels:
        with open(run / "predictions" / f"{v.id}.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == v.n_frames and set(rows[0]) == {"frame", "arousal_pred", "arousal_label"}
        got = np.array([float(r["arousal_label"]) for r in rows])
        np.testing.assert_allclose(got, v.labels[:, 0], atol=1e-6, equal_nan=True)
        assert all(-1 <= float(r["arousal_pred"]) <= 1 for r in rows)
    # an identical rerun gives byte-identical outputs (DVC), and leaves no temporary folders
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert train_stage.main(argv) == 0
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert before == after
    assert [p.name for p in run.parent.iterdir()] == ["0-arousal"]


def test_train_stage_errors(data, tmp_path, caplog):
    root, _ = data
    params = _write_params(tmp_path / "params.yaml")
    base = ["--params", str(params), "--data", str(root), "--out", str(tmp_path / "r")]
    assert train_stage.main(["--fold", "3", "--target", "valence"] + base) == 2
    assert "folds.json: fold 3" in caplog.text
    assert train_stage.main(["--fold", "0", "--target", "both"] + base) == 2
    assert "train.joint" in caplog.text
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit) as e:
        train_stage.main(["--help"])
    assert e.value.code == 0


def test_nan_free_metrics_for_constant_labels(videos):
    _, val = videos
    v = ArrayVideo.from_frames(val[0].features, val[0].id, labels=np.zeros_like(val[0].labels),
                               targets=("valence",))
    m = partition_metrics([v], {v.id: np.zeros((v.n_frames, 1), np.float32)}, ("valence",))
    assert math.isnan(m["ccc"]["valence"]) and math.isnan(m["ccc_mean"])


@pytest.fixture
def poison(monkeypatch):
    """``poison(epoch, name)``: after ``epoch`` epochs, write NaN into the trainer model's parameter
    or buffer ``name`` (the model is caught as the trainer builds it; the NaN goes in via on_epoch)."""
    import fusion.train as trainer

    built, real = [], trainer.RJCMA

    def spy(*args):
        built.append(real(*args))
        return built[-1]

    monkeypatch.setattr(trainer, "RJCMA", spy)

    def after(epoch, name):
        def on_epoch(rows):
            if len(rows) == epoch:
                tensors = dict(built[-1].named_parameters()) | dict(built[-1].named_buffers())
                with torch.no_grad():
                    tensors[name].view(-1)[0] = float("nan")
        return on_epoch
    return after


WEIGHT_V = "tcn.audio.network.0.conv1.parametrizations.weight.original1"


def test_nan_in_a_parameter_mid_run_keeps_the_best_epoch_and_names_it(videos, poison):
    train, val = videos
    cfg = dataclasses.replace(TINY_TRAIN, epochs=6)
    result = train_model(TINY_FUSION, cfg, train, val, ("valence",), on_epoch=poison(2, WEIGHT_V))
    assert len(result.history) == 2 and result.best_epoch in (1, 2)
    assert re.fullmatch(rf"non-finite loss at epoch 3, batch \d+: parameter {re.escape(WEIGHT_V)} \(audio\)",
                        result.stopped), result.stopped
    assert all(torch.isfinite(t).all() for t in result.model.state_dict().values())
    again = partition_metrics(val, predict_videos(result.model, val, 16, 8, 4), ("valence",))
    assert again["ccc_mean"] == pytest.approx(result.history[result.best_epoch - 1]["val_ccc"], abs=1e-6)


def test_nan_in_validation_predictions_names_the_buffer(videos, poison):
    train, val = videos
    cfg = dataclasses.replace(TINY_TRAIN, epochs=6)
    # training (batch statistics) stays finite; eval mode uses the poisoned running mean
    result = train_model(TINY_FUSION, cfg, train, val, ("valence",),
                         on_epoch=poison(1, "head.norm.running_mean"))
    assert len(result.history) == 1 and result.best_epoch == 1
    assert result.stopped == (f"non-finite prediction for validation video {val[0].id} after epoch 2: "
                              "buffer head.norm.running_mean (shared)")


def _with_nan(video, modality: str, frame: int) -> ArrayVideo:
    """``video`` in memory, with a NaN in its ``modality`` features at ``frame``."""
    feats = video.features
    feats[modality][frame, 0] = np.nan
    return ArrayVideo.from_frames(feats, video.id, labels=video.labels, targets=video.targets)


def test_nan_input_before_any_usable_epoch_is_an_error_naming_the_video(videos):
    train, val = videos
    bad = _with_nan(train[1], "visual", 3)
    with pytest.raises(Diverged, match=rf"non-finite loss at epoch 1, batch \d+: input visual features "
                                       rf"\(video {bad.id}\); no usable epoch"):
        train_model(dataclasses.replace(TINY_FUSION, normalize=False), TINY_TRAIN,
                    [train[0], bad, *train[2:]], val, ("valence",))


def test_train_stage_keeps_the_best_epoch_of_a_diverged_run(data, tmp_path, poison, monkeypatch, caplog):
    root, _ = data
    params = _write_params(tmp_path / "params.yaml", epochs=5)
    out = tmp_path / "results"
    argv = ["--fold", "0", "--target", "valence", "--params", str(params), "--data", str(root),
            "--out", str(out)]
    real, nan_after_2 = train_stage.train_model, poison(2, WEIGHT_V)
    monkeypatch.setattr(train_stage, "train_model", lambda *a, on_epoch, **kw: real(
        *a, on_epoch=lambda rows: (on_epoch(rows), nan_after_2(rows)), **kw))
    assert train_stage.main(argv) == 0
    run = layout.train_dir(0, "valence", out)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped"].startswith("non-finite loss at epoch 3") and WEIGHT_V in metrics["stopped"]
    assert metrics["epochs_run"] == 2 and len(json.loads((run / "curves.json").read_text())) == 2
    model, _ = load_checkpoint(run / "checkpoint.pt")
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())
    assert "stopped early: non-finite loss at epoch 3" in caplog.text
    # no usable epoch (NaN in every training video's features): exit 1, the culprit in the log, no results
    caplog.clear()
    load = train_stage.open_videos

    def poisoned(ids, *args, desc, **kw):
        videos = load(ids, *args, desc=desc, **kw)
        return [_with_nan(v, "visual", 0) for v in videos] if desc == "open train" else videos

    monkeypatch.setattr(train_stage, "open_videos", poisoned)
    assert train_stage.main(argv[:3] + ["arousal"] + argv[4:]) == 1
    assert re.search(r"train: non-finite loss at epoch 1, batch 1: (input visual features \(video .*\)|"
                     r"buffer input_mean_visual \(visual\)); no usable epoch", caplog.text), caplog.text
    assert [p.name for p in run.parent.iterdir()] == ["0-valence"]
