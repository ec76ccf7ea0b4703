"""Audio features: the VGGish log-mel front end, patches cut at read time, VGGish loading, the stage."""

from __future__ import annotations

import json
import logging
import shutil
import urllib.error
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torchvggish import mel_features, vggish_input

from pipeline.audio.features import (
    PATCH_ROWS,
    SILENCE,
    audio_features_for,
    features_from_samples,
    frame_means,
    load_extractor,
    log_mel,
    patch,
    patches,
)
from pipeline.audio.vggish import build_vggish, load_vggish
from pipeline.core import layout
from pipeline.core.assets import AssetError
from pipeline.core.cache import read_arrays, read_attrs
from pipeline.core.frames import frame_features
from pipeline.core.manifest import VideoEntry, file_hash, write_shards
from pipeline.core.media import extract_wav, probe
from pipeline.core.params import AudioParams
from stages import audio_features
from tests.media_fixtures import make_video, tone, write_wav

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
SR = 16000


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts plus two tones: a signal with structure in time and frequency."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    env = (np.sin(2 * np.pi * 1.3 * t) > 0).astype(np.float32)
    x = 0.05 * rng.standard_normal(n) * env + 0.2 * np.sin(2 * np.pi * 440 * t)
    x += 0.1 * np.sin(2 * np.pi * 2500 * t) * (1 - env)
    return x.astype(np.float32)


def test_patches_equal_torchvggish_examples():
    x = _speechlike(7.3)
    ref = vggish_input.waveform_to_examples(x, SR, return_tensor=False)  # [7, 96, 64]
    lm = log_mel(x, SR)
    assert lm.dtype == np.float32 and lm.shape[1] == 64
    assert len(lm) == 1 + (len(x) + SR - 400) // 160  # 10 ms rows over the audio + 1 s pad
    # 1 / fps = 0.96 s: video frame j starts exactly at example j
    got = patches(lm, np.arange(len(ref)), fps=1 / 0.96)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # 25 fps: example j starts at 0.96 j s = video frame 24 j
    for j in range(len(ref)):
        np.testing.assert_allclose(patch(lm, 24 * j, 25.0), ref[j], atol=1e-5)
    # 30 fps: frame 10 starts at 1/3 s -> row 33 (nearest 10 ms row)
    np.testing.assert_array_equal(patch(lm, 10, 30.0), lm[33:33 + PATCH_ROWS])


def test_patch_pads_by_edge_past_the_end_and_silence_without_audio():
    lm = log_mel(_speechlike(2.0), SR)
    last = patch(lm, 100, 25.0)  # starts at 4 s, past the last row
    np.testing.assert_array_equal(last, np.repeat(lm[-1:], PATCH_ROWS, axis=0))
    near = patch(lm, len(lm) - 10, 100.0)  # 10 real rows, then the last row repeated
    np.testing.assert_array_equal(near[:10], lm[-10:])
    np.testing.assert_array_equal(near[10:], np.repeat(lm[-1:], PATCH_ROWS - 10, axis=0))
    empty = patch(np.zeros((0, 64), np.float32), 3, 30.0)
    assert empty.shape == (PATCH_ROWS, 64) and np.all(empty == np.float32(SILENCE))
    silence = log_mel(np.zeros(SR, np.float32), SR)
    np.testing.assert_allclose(silence, SILENCE, atol=1e-6)  # log(0 + 0.01)


@pytest.mark.parametrize("fps", [30.0, 29.97, 25.0, 1 / 0.96])
def test_frame_means_are_patch_means(fps):
    lm = log_mel(_speechlike(3.0, seed=1), SR)
    n_frames = int(4.0 * fps)  # runs past the audio: edge padding included
    got = frame_means(lm, n_frames, fps)
    ref = patches(lm, np.arange(n_frames), fps).mean(axis=1)
    assert got.shape == (n_frames, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_tone_peaks_in_its_mel_band():
    x = tone(2.0, SR, hz=440.0)
    arrays, attrs = _features(x)
    mel = mel_features.spectrogram_to_mel_matrix(64, 257, SR, 125.0, 7500.0)
    band = int(np.argmax(mel[round(440 / (SR / 512))]))  # FFT bin of 440 Hz -> its mel band
    assert abs(int(arrays["logmel_mean"][0].argmax()) - band) <= 1
    assert attrs["audio_status"] == "ok" and attrs["frame_dataset"] == "logmel_mean"


def _features(x, fps=10.0, n_frames=20, params: AudioParams | None = None):
    return features_from_samples(x, SR, fps, n_frames, load_extractor(params or AudioParams()),
                                 "test")


def test_silent_and_missing_audio_are_defined_and_marked(caplog):
    with caplog.at_level(logging.DEBUG, logger="pipeline"):  # per-video lines are debug (-v)
        arrays, attrs = _features(np.zeros(SR * 2, np.float32))
        assert attrs["audio_status"] == "silent" and np.all(np.isfinite(arrays["logmel_mean"]))
        arrays, attrs = audio_features_for(None, 10.0, 20, AudioParams())
    assert attrs["audio_status"] == "none"
    assert arrays["logmel_mean"].shape == (20, 64)
    np.testing.assert_allclose(arrays["logmel_mean"], SILENCE, atol=1e-6)
    assert "silent" in caplog.text and "no audio" in caplog.text


# --- VGGish -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vggish_file(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A checkpoint in torchvggish's released format: the state dict of a fresh VGG, torch.save'd."""
    torch.manual_seed(0)
    model = build_vggish()
    path = tmp_path_factory.mktemp("vggish") / "vggish-10086976.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_vggish_loads_released_state_dict_and_embeds_frames(vggish_file):
    path, ref = vggish_file
    model, sha = load_vggish(str(path))
    assert len(sha) == 64
    assert set(model.state_dict()) == set(ref.state_dict())
    assert any(k.startswith("features.") for k in model.state_dict())
    assert any(k.startswith("embeddings.") for k in model.state_dict())
    x = _speechlike(3.0, seed=2)
    arrays, attrs = _features(x, fps=5.0, n_frames=4,  # VGGish costs ~0.1 s per frame on CPU
                              params=AudioParams(vggish_weights=str(path), batch_size=3))
    assert attrs["frame_dataset"] == "vggish" and "logmel_mean" not in arrays
    emb = arrays["vggish"]
    assert emb.shape == (4, 128) and emb.dtype == np.float32
    with torch.no_grad():  # frame 3's embedding is VGGish of frame 3's patch
        p = torch.from_numpy(patch(arrays["logmel"], 3, 5.0))[None, None]
        np.testing.assert_allclose(emb[3], ref.eval()(p)[0].numpy(), rtol=1e-4, atol=1e-5)


def test_vggish_bad_weights_give_clear_errors(tmp_path, vggish_file):
    with pytest.raises(AssetError, match=r"audio\.vggish_weights") as e:
        load_vggish(str(tmp_path / "nope.pth"))
    assert "nope.pth" in str(e.value) and "vggish-10086976.pth" in str(e.value)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, wrong)
    with pytest.raises(AssetError, match="wrong.pth"):
        load_vggish(str(wrong))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(AssetError, match="junk.pth"):
        load_vggish(str(junk))


def test_vggish_download_uses_torch_hub_cache_and_fails_clearly_offline(tmp_path, monkeypatch,
                                                                         vggish_file):
    path, ref = vggish_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / path.name
    cached.parent.mkdir(parents=True)
    cached.hardlink_to(path) if hasattr(cached, "hardlink_to") else shutil.copy(path, cached)
    model, _ = load_vggish("download")  # already in the hub cache: no network
    torch.testing.assert_close(model.state_dict()["embeddings.4.bias"],
                               ref.state_dict()["embeddings.4.bias"])
    cached.unlink()

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(AssetError, match=r"download failed.*audio\.vggish_weights"):
        load_vggish("download")


# --- the stage ----------------------------------------------------------------------------------

def _entry(path: Path, vid: str) -> VideoEntry:
    info = probe(path)
    return VideoEntry(id=vid, source=str(path), source_id=vid, content_hash=file_hash(path),
                      fps=info.fps, n_frames=info.n_frames, duration=info.duration,
                      has_audio=info.has_audio, shard=0)


def test_stage_writes_caches_skips_current_and_is_byte_identical(tmp_path, caplog):
    data = tmp_path / "data"
    videos = {"tone": make_video(tmp_path / "v" / "tone.mp4", n_frames=30, fps=10.0),
              "mute": make_video(tmp_path / "v" / "mute.avi", n_frames=25, fps=12.5,
                                 with_audio=False),
              "nowav": make_video(tmp_path / "v" / "nowav.mp4", n_frames=10, fps=10.0)}
    entries = [_entry(p, vid) for vid, p in videos.items()]
    write_shards(entries, 1, data)
    for e in entries[:2]:  # the extract stage ran for two of them
        extract_wav(e.source, layout.wav_path(0, e.id, data))
    argv = ["--params", str(PARAMS), "--data", str(data), "--shard", "0"]
    assert audio_features.main(argv) == 1  # nowav failed...
    assert "nowav" in caplog.text and "nowav.wav" in caplog.text and "extract_audio" in caplog.text
    out = {vid: layout.feature_path("audio", 0, vid, data) for vid in videos}
    assert out["tone"].is_file() and out["mute"].is_file() and not out["nowav"].exists()
    # the silent video: one summary line, its id in the shard's conditions.json
    assert "audio_features[0]: silent audio: 1 video(s), listed in" in caplog.text
    assert json.loads((out["tone"].parent / "conditions.json").read_text()) == {"silent audio": ["mute"]}

    attrs = read_attrs(out["tone"])
    assert attrs["modality"] == "audio" and attrs["n_frames"] == 30 and attrs["fps"] == 10.0
    assert attrs["frame_dataset"] == "logmel_mean" and attrs["extractor"] == "logmel"
    assert attrs["source_hash"] == file_hash(layout.wav_path(0, "tone", data))
    arrays = read_arrays(out["tone"])
    assert arrays["logmel"].dtype == np.float32 and arrays["logmel"].shape[1] == 64
    assert abs(len(arrays["logmel"]) - (3.0 + 1.0) * 100) <= 4  # 3 s of audio + 1 s pad
    feats = frame_features(out["tone"])
    assert feats.shape == (30, 64) and feats.dtype == np.float32
    mute = frame_features(out["mute"])
    assert mute.shape == (25, 64)
    np.testing.assert_allclose(mute, SILENCE, atol=1e-6)
    assert read_attrs(out["mute"])["audio_status"] == "silent"

    # in-process (predict) gives the same content as the stage
    direct, _ = audio_features_for(layout.wav_path(0, "tone", data), entries[0].fps, 30,
                                   AudioParams())
    np.testing.assert_array_equal(direct["logmel_mean"], feats)

    # rerun: current caches are skipped (file untouched); a rewrite is byte-identical
    before = out["tone"].read_bytes()
    mtime = out["tone"].stat().st_mtime_ns
    caplog.clear()
    audio_features.main(argv)
    assert out["tone"].stat().st_mtime_ns == mtime and "2 skipped" in caplog.text
    out["tone"].unlink()
    audio_features.main(argv)
    assert out["tone"].read_bytes() == before
    with h5py.File(out["tone"]) as f:
        assert f["logmel"].compression == "gzip" and f["logmel"].chunks is not None

    # a re-extracted wav with other content (e.g. a new extractor) makes the cache stale
    write_wav(layout.wav_path(0, "tone", data), tone(3.0, hz=880.0), 16000)
    caplog.clear()
    audio_features.main(argv)
    assert "1 done" in caplog.text and out["tone"].read_bytes() != before


def test_stage_reports_missing_weights_before_any_video(tmp_path, caplog):
    data = tmp_path / "data"
    write_shards([], 1, data)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.read_text().replace("vggish_weights: ''",
                                                 "vggish_weights: /nowhere/vggish.pth"))
    assert audio_features.main(["--params", str(params), "--data", str(data), "--shard", "0"]) == 2
    assert "/nowhere/vggish.pth" in caplog.text and "audio.vggish_weights" in caplog.text
