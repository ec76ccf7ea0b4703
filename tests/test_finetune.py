"""The fine-tuning path (train.backbones: finetune): layer groups, releases, schedule, augmentation,
frozen BatchNorm, best-weight reloads, on real IR-50 / VGGish layouts and a synthetic dataset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fusion.augment import crop_flip
from fusion.backbones import BackboneRJCMA
from fusion.data import open_videos
from fusion.lr import official_warmup_lr
from fusion.train import torch_threads, train_model
from fusion.unfreeze import Phases, layer_groups, set_trainable
from pipeline.core.params import FusionParams, Params, TrainParams
from tests.synthetic import write_dataset

TINY_FUSION = FusionParams(window=8, stride=8, recursions=1, tcn_kernel=3, head_hidden=4,
                           tcn_channels={"audio": (4,), "visual": (4,), "text": (4,)})
FULL = {"visual": {"name": "ir50", "crop": 40, "chunk": 64},
        "audio": {"name": "vggish", "relu": False, "chunk": 64}}
TINY = {"visual": {"name": "ir50-tiny", "crop": 40, "chunk": 64},
        "audio": {"name": "vggish-tiny", "relu": False, "chunk": 64}}
MODS = ("audio", "visual", "text")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Torch CPU threads = 1 (several times faster for these small tensors on a shared machine)."""
    with torch_threads(1):
        yield


def inputs(b: int, k: int, text_dim: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"visual": torch.randint(0, 256, (b, k, 48, 48, 3), dtype=torch.uint8, generator=g),
            "face_present": torch.ones(b, k, dtype=torch.bool),
            "audio": torch.randn(b, k, 96, 64, generator=g), "text": torch.randn(b, k, text_dim, generator=g)}


def with_grad(model: torch.nn.Module) -> set[str]:
    """Backbone parameter names (relative to the backbone) that a backward pass reached."""
    model.zero_grad(set_to_none=True)
    model.train()
    model(inputs(1, 2)).sum().backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and n.startswith("encoders.")}


def names_under(model, prefixes) -> set[str]:
    return {n for n, _ in model.named_parameters() if any(n.startswith(p + ".") for p in prefixes)}


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return BackboneRJCMA(dataclasses.replace(TINY_FUSION, window=2, stride=2), FULL, {"text": 3}, 1)


def test_official_groups_in_the_real_layouts(full_model):
    groups = layer_groups(full_model)
    v, a = "encoders.visual.backbone.", "encoders.audio.backbone."
    assert groups == [[v + "output_layer", a + "embeddings.4"],
                      [v + "body.21", v + "body.22", v + "body.23", a + "embeddings.2"],
                      [v + "body.18", v + "body.19", v + "body.20", a + "embeddings.0"]]
    # the authors' parameter indices: their IR-50 registers input_layer, output_layer, body
    ir = full_model.encoders["visual"].backbone
    order = [n for part in ("input_layer", "output_layer", "body")
             for n, _ in ir.named_parameters() if n.startswith(part + ".")]
    assert len(order) == 187
    for names, (lo, hi) in zip(groups, [(4, 10), (163, 187), (142, 163)]):
        picked = {n[len(v):] for n in names_under(full_model, [g for g in names if g.startswith(v)])}
        assert picked == set(order[lo:hi])
    vgg = [n for n, _ in full_model.encoders["audio"].backbone.named_parameters()]
    assert len(vgg) == 18
    for names, (lo, hi) in zip(groups, [(16, 18), (14, 16), (12, 14)]):
        picked = {n[len(a):] for n in names_under(full_model, [g for g in names if g.startswith(a)])}
        assert picked == set(vgg[lo:hi])


def test_gradients_reach_exactly_the_released_groups(full_model):
    model = full_model
    groups = layer_groups(model)
    set_trainable(model, 0)
    assert with_grad(model) == set()  # before the first release: backbones fully frozen
    fusion_params = [p for n, p in model.named_parameters() if not n.startswith("encoders.")]
    assert all(p.grad is not None for p in fusion_params)
    phases = Phases(model, TrainParams(warmup_epochs=0, min_lr=1.0, lr=1e-3), n_batches=1)
    for k in range(1, 4):  # release k: groups 1..k, in both backbones, nothing else
        assert phases.released == k
        assert with_grad(model) == names_under(model, [n for g in groups[:k] for n in g])
        event = phases.end_epoch(0.5)  # lr 1e-3 < min_lr 1.0: release the next group / end
        assert event == ("release" if k < 3 else "done")


def test_a_release_recreates_adam_and_restarts_the_warmup():
    torch.manual_seed(0)
    model = BackboneRJCMA(TINY_FUSION, TINY, {"text": 3}, 1)
    train = TrainParams(lr=1e-3, min_lr=1e-5, plateau_factor=0.1, plateau_patience=0, warmup_epochs=1)
    phases = Phases(model, train, n_batches=2)
    first = phases.optimizer
    assert [phases.lr(0), phases.lr(1)] == [pytest.approx(5e-4), pytest.approx(1e-3)]
    model.train()
    model(inputs(1, 8)).sum().backward()
    first.step()
    assert len(first.state) > 0
    assert phases.end_epoch(0.5) is None  # end of warm-up: the plateau starts (best 0.5)
    lrs = []
    for _ in range(3):  # no improvement: 1e-4, 1e-5 (= min_lr, not below), 1e-6 (below)
        event = phases.end_epoch(0.1)
        lrs.append(phases.plateau.lr if event is None else event)
    assert lrs == [pytest.approx(1e-4), pytest.approx(1e-5), "release"]
    assert phases.optimizer is not first and len(phases.optimizer.state) == 0
    assert phases.plateau.lr == 1e-3 and phases.epoch == 0
    assert phases.lr(0) == pytest.approx(5e-4)  # the warm-up restarted
    assert all(g["lr"] == pytest.approx(5e-4) for g in phases.optimizer.param_groups)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in phases.optimizer.param_groups for p in g["params"]} == trainable


def test_official_warmup_is_the_authors_saw_tooth():
    n, e = 10, 5
    lrs = [official_warmup_lr(ep, b, n, e, 1.0) for ep in range(6) for b in range(n)]
    assert lrs[0] == 0 and lrs[9] == pytest.approx(9 / 250)  # epoch 0: b / (n * 25)
    assert lrs[10] == 0  # restarts every epoch
    assert max(lrs[:50]) == pytest.approx(9 * 5 / 250)  # peaks at ~0.2 lr in epoch 5
    assert lrs[50:] == [1.0] * n  # then the full lr


def coordinate_faces(n: int) -> torch.Tensor:
    """Faces whose channel 0 is the row and channel 1 the column of each pixel."""
    ar = torch.arange(48, dtype=torch.uint8)
    f = torch.zeros(n, 48, 48, 3, dtype=torch.uint8)
    f[..., 0] = ar[:, None]
    f[..., 1] = ar[None, :]
    return f


def test_crops_vary_in_training_are_centred_in_evaluation_and_half_are_flipped():
    faces = coordinate_faces(2000)
    torch.manual_seed(0)
    x = crop_flip(faces, 40, train=True) * 0.5 + 0.5  # back to [0, 1]
    rows = torch.round(x[:, 0, :, 0] * 255)  # [N, 40] row index down the first column
    cols = torch.round(x[:, 1, 0, :] * 255)  # [N, 40] column index along the first row
    oy = rows[:, 0]
    flipped = cols[:, 0] > cols[:, -1]
    ox = torch.where(flipped, cols[:, -1], cols[:, 0])
    assert set(oy.int().tolist()) == set(range(9)) and set(ox.int().tolist()) == set(range(9))
    assert (rows[:, 1:] - rows[:, :-1] == 1).all()  # contiguous crops
    assert 0.45 < flipped.float().mean().item() < 0.55
    e = crop_flip(faces[:50], 40, train=False) * 0.5 + 0.5
    assert (torch.round(e[:, 0, 0, 0] * 255) == 4).all() and (torch.round(e[:, 1, 0, 0] * 255) == 4).all()
    assert (torch.round(e[:, 1, 0, -1] * 255) == 43).all()  # not flipped
    assert e.min() >= 0 and crop_flip(faces[:1], 40, train=False).min() >= -1  # (x/255 - .5) / .5


@pytest.fixture(scope="module")
def raw_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune") / "data"
    ids = write_dataset(root, {"train": 3, "validation": 2}, [24, 40], raw=True, seed=5)
    kinds = {"audio": "logmel", "visual": "faces", "text": "embedding"}
    tr = open_videos(ids["train"], MODS, ("valence",), root, inputs=kinds)
    va = open_videos(ids["validation"], MODS, ("valence",), root, inputs=kinds)
    return tr, va


def params_for(**train) -> Params:
    p = Params()
    t = dict(backbones="finetune", finetune_visual="ir50-tiny", finetune_audio="vggish-tiny",
             batch_size=2, lr=1e-3, warmup_epochs=0, epochs=1, device="cpu", threads=1,
             backbone_chunk=32) | train
    return dataclasses.replace(p, fusion=TINY_FUSION, train=dataclasses.replace(p.train, **t))


def run(params: Params, data):
    return train_model(params.fusion, params.train, data[0], data[1], ("valence",), params=params)


def bn_stats(model) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in model.named_buffers() if n.startswith("encoders.") and "running" in n}


def test_frozen_batchnorm_statistics_do_not_move_in_a_training_epoch(raw_data):
    fresh = bn_stats(BackboneRJCMA(TINY_FUSION, TINY, {"text": 16}, 1))  # 0 / 1 at construction
    res = run(params_for(), raw_data)
    after = bn_stats(res.model)
    released = "encoders.visual.backbone.output_layer."
    moved = {n for n in after if not torch.equal(after[n], fresh[n])}
    assert moved and all(n.startswith(released) for n in moved)  # only group 1's BatchNorms
    drift = bn_stats(run(params_for(frozen_bn="train"), raw_data).model)
    assert not torch.equal(drift["encoders.visual.backbone.body.0.res_layer.0.running_mean"],
                           fresh["encoders.visual.backbone.body.0.res_layer.0.running_mean"])


def test_training_releases_every_group_then_ends(raw_data):
    # min_lr above lr: after each (warm-up-free) epoch the lr is below min_lr -> release
    res = run(params_for(epochs=10, min_lr=1.0), raw_data)
    assert [r["released"] for r in res.history] == [1, 2, 3]
    assert res.stopped == "all groups released"
    assert {n for n, p in res.model.named_parameters() if n.startswith("encoders.") and p.requires_grad} \
        == names_under(res.model, [n for g in layer_groups(res.model) for n in g])


def test_unfreeze_all_trains_every_backbone_layer_from_epoch_0(raw_data):
    """train.unfreeze: all (random-init backbones, the demo): one group holding both whole
    backbones, released at epoch 0; the lr falling below min_lr then ends training."""
    torch.manual_seed(0)
    model = BackboneRJCMA(dataclasses.replace(TINY_FUSION, window=2, stride=2), TINY, {"text": 3}, 1)
    assert layer_groups(model, "all") == [["encoders.visual.backbone", "encoders.audio.backbone"]]
    phases = Phases(model, TrainParams(warmup_epochs=0, min_lr=1.0, lr=1e-3, unfreeze="all"), n_batches=1)
    everything = {n for n, _ in model.named_parameters() if n.startswith("encoders.")}
    assert phases.n_groups == 1 and with_grad(model) == everything
    model.train()
    phases.set_modes()
    assert all(m.training for m in model.encoders.modules())  # no frozen layer: no eval-mode part
    assert phases.end_epoch(0.5) == "done"
    res = run(params_for(epochs=5, min_lr=1.0, unfreeze="all"), raw_data)
    assert [r["released"] for r in res.history] == [1] and res.stopped == "all groups released"
    fresh = BackboneRJCMA(TINY_FUSION, TINY, {"text": 16}, 1).state_dict()
    stem = "encoders.visual.backbone.input_layer.0.weight"  # never trained under `progressive`
    assert not torch.equal(res.model.state_dict()[stem], fresh[stem])


def test_the_best_weights_are_reloaded_after_every_epoch(raw_data, monkeypatch):
    loads: list[int] = []
    original = torch.nn.Module.load_state_dict

    def spy(self, state, *a, **kw):
        if isinstance(self, BackboneRJCMA):
            loads.append(len(state))
        return original(self, state, *a, **kw)

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", spy)
    res = run(params_for(epochs=5, lr=3e-2, reload_best_every_epoch=True, early_stop=0), raw_data)
    worse = [r for r in res.history if not r["best"] and r["epoch"] > 1]
    assert worse, "the run should have epochs without improvement"
    assert len(loads) == len(worse) + 1  # one reload per non-improving epoch + the final restore
    loads.clear()
    res = run(params_for(epochs=3, lr=3e-2, reload_best_every_epoch=False, early_stop=0), raw_data)
    assert len(loads) == 1  # only the final restore


def test_a_checkpoint_carries_the_finetuned_backbones(raw_data, tmp_path):
    from fusion.checkpoint import load_checkpoint, save_checkpoint
    from fusion.evaluate import predict_video

    params = params_for()
    res = run(params, raw_data)
    path = save_checkpoint(tmp_path / "checkpoint.pt", res.model, targets=["valence"], params=params)
    model, ckpt = load_checkpoint(path)
    assert isinstance(model, BackboneRJCMA)
    assert any(k.startswith("encoders.visual.backbone.body.") for k in ckpt["model"])
    for m in ("visual", "audio"):  # fixed standardisation of the initial backbones' embeddings
        assert not torch.allclose(ckpt["model"][f"fusion_model.input_std_{m}"], torch.ones(32))
    for k, v in res.model.state_dict().items():
        assert torch.equal(v.cpu(), model.state_dict()[k]), k
    v = raw_data[1][0]
    np.testing.assert_allclose(predict_video(model, v, 8, 8), res.val_preds[v.id], atol=1e-6)


def test_rjcma_predict_of_a_finetuned_checkpoint_equals_the_report(tmp_path):
    """A real video through the stages (manifest, wav, audio + visual caches) and the report's test
    predictions vs `rjcma predict` on the same file: faces and log-mel re-extracted, same outputs."""
    import yaml

    from fusion.checkpoint import save_checkpoint
    from fusion.report import Run, predict_test
    from pipeline.core.params import load_params
    from rjcma.predict import Predictor
    from stages import audio_features, extract_audio, visual_features
    from stages import manifest as manifest_stage
    from tests.media_fixtures import make_video

    videos = tmp_path / "videos"
    make_video(videos / "clip.mp4", n_frames=30, fps=10.0, face="astronaut")
    data = tmp_path / "data"
    cfg = {"data": {"root": str(videos), "layout": "folder", "shards": 1, "folds": 1},
           "visual": {"face_source": "frames"},
           "fusion": {"modalities": ["audio", "visual"], "window": 8, "stride": 4, "recursions": 1,
                      "tcn_channels": {"audio": [4], "visual": [4]}, "tcn_kernel": 3, "head_hidden": 4},
           "train": {"backbones": "finetune", "finetune_visual": "ir50-tiny",
                     "finetune_audio": "vggish-tiny", "device": "cpu"}}
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(cfg))
    common = ["--params", str(pfile), "--data", str(data)]
    assert manifest_stage.main(common) == 0
    for stage in (extract_audio, audio_features, visual_features):
        assert stage.main(common + ["--shard", "0"]) == 0
    params = load_params(pfile)
    torch.manual_seed(1)
    model = BackboneRJCMA(params.fusion, TINY | {"visual": TINY["visual"] | {"crop": 40}}, {}, 1)
    with torch.no_grad():  # "fine-tuned": weights and BatchNorm statistics away from their init
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.train()
        x = inputs(2, 8)
        model({k: x[k] for k in ("visual", "face_present", "audio")})
    run_dir = tmp_path / "results" / "0-valence"
    on_gpu = {s: dataclasses.replace(getattr(params, s), device="cuda:1")
              for s in ("visual", "audio", "train")}
    # fine-tuned on cuda:1 (recorded in the checkpoint): predicts on this CPU all the same
    save_checkpoint(run_dir / "checkpoint.pt", model, targets=["valence"],
                    params=dataclasses.replace(params, **on_gpu))
    report = predict_test([Run(0, "valence", run_dir, {}, [])], ["clip"], ["valence"], data)
    pred = Predictor(run_dir)(videos / "clip.mp4")
    assert pred.face_present.mean() > 0.5
    assert np.ptp(report["clip"]["valence"]) > 0
    np.testing.assert_allclose(pred.values["valence"], report["clip"]["valence"], atol=1e-6)


def test_vggish_relu_option_drops_only_the_final_relu():
    from pipeline.audio.vggish import VGGishConfig, build_vggish

    tiny = VGGishConfig(channels=(4, 8, 8, 16), pools=(0, 1, 2, 3), hidden=16, embedding_dim=8)
    with_relu, without = build_vggish(True, tiny), build_vggish(False, tiny)
    assert len(with_relu.embeddings) == 6 and len(without.embeddings) == 5
    assert isinstance(without.embeddings[4], torch.nn.Linear)
    without.load_state_dict(with_relu.state_dict())  # same keys: released weights load either way
    x = torch.randn(4, 1, 96, 64)
    raw, clipped = without(x), with_relu(x)
    assert (raw < 0).any() and torch.equal(clipped, raw.clamp(min=0))
    full = build_vggish(False)
    assert [type(m).__name__ for m in full.embeddings] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
