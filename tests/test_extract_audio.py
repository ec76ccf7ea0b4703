"""`python -m stages.extract_audio`: per-shard wavs, skip when current, failure isolation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.core import layout
from pipeline.core.manifest import read_manifest
from pipeline.core.media import read_wav
from stages import extract_audio, manifest

N_SHARDS = 2


@pytest.fixture
def project(affwild2_root, tmp_path):
    """(params file, data dir) with the manifest of a private copy of the tiny Aff-Wild2 dataset."""
    root = Path(shutil.copytree(affwild2_root, tmp_path / "aw"))
    params = tmp_path / "params.yaml"
    params.write_text(f"data: {{root: {json.dumps(str(root))}, shards: {N_SHARDS}, folds: 2}}\n")
    data = tmp_path / "data"
    assert manifest.main(["--params", str(params), "--data", str(data)]) == 0
    return params, data


def run(params, data, shard):
    return extract_audio.main(["--params", str(params), "--data", str(data), "--shard", str(shard)])


def wavs(data):
    return {e.id: layout.wav_path(e.shard, e.id, data) for e in read_manifest(data)}


def test_extracts_every_video_then_skips(project, caplog):
    params, data = project
    for k in range(N_SHARDS):
        assert run(params, data, k) == 0
    paths = wavs(data)
    for vid, wav in paths.items():
        x, sr = read_wav(wav)
        assert sr == 16000 and len(x) == pytest.approx(32000, abs=800), vid
        assert bool(np.abs(x).max() > 0.1) is (vid != "val1"), vid  # val1.avi has no audio: silence
    assert paths["duo_left"].read_bytes() == paths["duo_right"].read_bytes()  # one source, same audio
    assert paths["train1"].read_bytes() != paths["train2"].read_bytes()
    stamps = {v: (p.stat().st_ino, p.stat().st_mtime_ns) for v, p in paths.items()}
    caplog.clear()
    for k in range(N_SHARDS):
        assert run(params, data, k) == 0
    assert "0 done" in caplog.text and " 0 failed" in caplog.text
    assert {v: (p.stat().st_ino, p.stat().st_mtime_ns) for v, p in paths.items()} == stamps
    # a stale sidecar (e.g. the video changed) or a damaged wav is redone, not trusted
    side = extract_audio.sidecar_path(paths["train1"])
    side.write_text(side.read_text().replace('"source_hash": "', '"source_hash": "x'))
    paths["test1"].write_bytes(paths["test1"].read_bytes()[:100])
    for k in range(N_SHARDS):
        assert run(params, data, k) == 0
    redone = {v for v, p in paths.items() if (p.stat().st_ino, p.stat().st_mtime_ns) != stamps[v]}
    assert redone == {"train1", "test1"}
    assert read_wav(paths["test1"])[0].size == pytest.approx(32000, abs=800)
    train1 = next(e for e in read_manifest(data) if e.id == "train1")
    assert json.loads(side.read_text())["source_hash"] == train1.content_hash


def test_one_broken_video_does_not_stop_the_others(project, caplog):
    params, data = project
    entries = {e.id: e for e in read_manifest(data)}
    Path(entries["train2"].source).write_bytes(b"\x00" * 2048)  # broken after the manifest
    codes = [run(params, data, k) for k in range(N_SHARDS)]
    bad_shard = entries["train2"].shard
    assert codes[bad_shard] == 1 and codes[1 - bad_shard] == 0
    assert "train2" in caplog.text and "train2.mp4" in caplog.text
    paths = wavs(data)
    assert not paths["train2"].exists()
    assert all(p.exists() for v, p in paths.items() if v != "train2")
    assert not list((data / "interim").rglob(".*"))  # no temp files left


def test_missing_manifest_is_one_clear_line(tmp_path, caplog):
    params = tmp_path / "params.yaml"
    params.write_text("data: {shards: 2}\n")
    assert run(params, tmp_path / "nodata", 0) == 2
    assert "run `python -m stages.manifest` first" in caplog.text
