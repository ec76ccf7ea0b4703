"""The text stages end to end on a tiny shard: user transcripts → punctuation (a tiny model built
here) → BERT (the real minilm) → text caches; skip-if-current, per-video isolation, silence."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.core import layout
from pipeline.core.cache import read_arrays, read_attrs
from pipeline.core.frames import frame_features
from pipeline.core.manifest import VideoEntry, write_shards
from pipeline.core.params import AsrParams, Params, PunctuationParams, TextParams, to_dict
from pipeline.text.bert import encode_words
from pipeline.text.features import TextChain
from stages import punctuate, text_features, transcribe
from tests.text_fixtures import make_punctuation_model

FPS, N_FRAMES = 10.0, 30
TALK = [{"word": "hello", "start": 0.0, "end": 0.3}, {"word": "there", "start": 0.3, "end": 0.6},
        {"word": "stop", "start": 0.6, "end": 0.9}, {"word": "how", "start": 1.5, "end": 1.8},
        {"word": "are", "start": 1.8, "end": 2.0}, {"word": "you", "start": 2.0, "end": 2.2}]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A dataset root with transcripts, a 1-shard manifest of 3 videos, params, run once."""
    base = tmp_path_factory.mktemp("textstage")
    root, data = base / "root", base / "data"
    (root / "transcripts").mkdir(parents=True)
    (root / "transcripts" / "talk.json").write_text(json.dumps(TALK))
    (root / "transcripts" / "quiet.csv").write_text("word,start,end\n")  # silence: no words
    (root / "transcripts" / "broken.csv").write_text("hello,0.0,zero\n")

    def entry(vid: str) -> VideoEntry:
        return VideoEntry(id=vid, source=str(root / f"{vid}.mp4"), source_id=vid, content_hash=vid,
                          fps=FPS, n_frames=N_FRAMES, duration=N_FRAMES / FPS, has_audio=True)

    write_shards([entry("talk"), entry("quiet"), entry("broken")], 1, data)
    params = dataclasses.replace(
        Params(),
        asr=AsrParams(engine="transcripts", transcripts_dir="transcripts"),
        punctuation=PunctuationParams(model=str(make_punctuation_model(base / "punct"))),
        text=TextParams(bert="minilm", layers=4, max_tokens=512, batch_size=8, gap="zeros"))
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, root=str(root)))
    params_file = base / "params.yaml"
    params_file.write_text(yaml.safe_dump(to_dict(params)))
    args = ["--params", str(params_file), "--data", str(data), "--shard", "0"]
    codes = [m.main(args) for m in (transcribe, punctuate, text_features)]
    return dict(root=root, data=data, params=params, args=args, codes=codes)


def outputs(data: Path, vid: str) -> list[Path]:
    return [layout.asr_path(0, vid, data), layout.transcript_path(0, vid, data),
            layout.feature_path("text", 0, vid, data)]


def test_chain_writes_transcripts_and_features(project):
    data = project["data"]
    assert project["codes"] == [1, 1, 1]  # `broken` failed in every stage; the others went on
    asr = json.loads(layout.asr_path(0, "talk", data).read_text())
    assert [w["word"] for w in asr["words"]] == [w["word"] for w in TALK]
    assert asr["source"] == "transcript:talk.json"
    punct = json.loads(layout.transcript_path(0, "talk", data).read_text())
    assert [w["word"] for w in punct["words"]] == ["Hello", "there", "stop.", "How", "are", "you"]
    assert [(w["start"], w["end"]) for w in punct["words"]] == [(w["start"], w["end"]) for w in TALK]
    h5 = layout.feature_path("text", 0, "talk", data)
    attrs, arrays = read_attrs(h5), read_arrays(h5)
    assert attrs["modality"] == "text" and attrs["dim"] == 384 and attrs["n_frames"] == N_FRAMES
    assert arrays["words"].tolist() == ["Hello", "there", "stop.", "How", "are", "you"]
    assert arrays["embedding"].dtype == np.float16 and arrays["embedding"].shape == (6, 384)
    assert arrays["frame_word"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] + [-1] * 6 + \
        [3, 3, 3, 4, 4, 5, 5] + [-1] * 8
    from pipeline.text.bert import load_bert

    expected = encode_words(load_bert("minilm"), arrays["words"].tolist(), 4, 512, 8)
    np.testing.assert_allclose(arrays["embedding"].astype(np.float32), expected, atol=2e-2, rtol=1e-3)
    x = frame_features(h5)  # the trainer's view: [n_frames, D], zeros between words
    assert x.shape == (N_FRAMES, 384)
    np.testing.assert_array_equal(x[0], arrays["embedding"][0].astype(np.float32))
    assert not x[9:15].any() and x[15:22].any()


def test_silence_gives_zero_features(project):
    data = project["data"]
    assert json.loads(layout.transcript_path(0, "quiet", data).read_text())["words"] == []
    h5 = layout.feature_path("text", 0, "quiet", data)
    assert read_attrs(h5)["dim"] == 384
    x = frame_features(h5)
    assert x.shape == (N_FRAMES, 384) and not x.any()


def test_broken_video_names_file_and_line_and_leaves_nothing(project, caplog):
    assert not any(p.exists() for p in outputs(project["data"], "broken"))
    with caplog.at_level("ERROR"):
        transcribe.main(project["args"])
    assert "broken.csv: line 1: end 'zero' is not a number" in caplog.text


def test_rerun_skips_and_a_changed_input_reruns_only_that_video(project):
    data, root, args = project["data"], project["root"], project["args"]
    before = {vid: [p.stat().st_mtime_ns for p in outputs(data, vid)] for vid in ("talk", "quiet")}
    for m in (transcribe, punctuate, text_features):
        m.main(args)
    assert {vid: [p.stat().st_mtime_ns for p in outputs(data, vid)] for vid in before} == before
    talk = TALK[:3] + [{"word": "why", "start": 1.5, "end": 1.8}]
    (root / "transcripts" / "talk.json").write_text(json.dumps(talk))
    for m in (transcribe, punctuate, text_features):
        m.main(args)
    after = {vid: [p.stat().st_mtime_ns for p in outputs(data, vid)] for vid in before}
    assert after["quiet"] == before["quiet"]
    assert all(a != b for a, b in zip(after["talk"], before["talk"]))
    words = read_arrays(layout.feature_path("text", 0, "talk", data), ["words"])["words"]
    assert words.tolist() == ["Hello", "there", "stop.", "Why?"]
    (root / "transcripts" / "talk.json").write_text(json.dumps(TALK))  # restore for other tests


def test_in_process_chain_matches_the_stages(project, tmp_path):
    """``predict``'s path: the same cache content from the TextChain, no manifest, no DVC."""
    chain = TextChain(project["params"])
    out = chain.write(tmp_path / "talk.h5", "talk", FPS, N_FRAMES,
                      transcript_file=project["root"] / "transcripts" / "talk.json")
    for m in (transcribe, punctuate, text_features):  # make sure the stage output is for TALK
        m.main(project["args"])
    ours, stage = read_arrays(out), read_arrays(layout.feature_path("text", 0, "talk", project["data"]))
    assert ours["words"].tolist() == stage["words"].tolist()
    np.testing.assert_array_equal(ours["frame_word"], stage["frame_word"])
    np.testing.assert_array_equal(ours["embedding"], stage["embedding"])


def test_stage_help_and_bad_params(project, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        transcribe.main(["--help"])
    assert e.value.code == 0 and "Word timestamps" in capsys.readouterr().out
    bad = yaml.safe_load(Path(project["args"][1]).read_text())
    bad["asr"]["engine"] = "kaldi"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(bad))
    assert transcribe.main(["--params", str(tmp_path / "p.yaml"), *project["args"][2:]]) == 2


@pytest.mark.parametrize("raw,needle", [
    ({"asr": {"engine": "kaldi"}}, "asr.engine"),
    ({"asr": {"chunk_seconds": 0}}, "asr.chunk_seconds"),
    ({"punctuation": {"chunk_words": 5}}, "punctuation.chunk_words"),
    ({"text": {"gap": "nearest"}}, "text.gap"),
    ({"text": {"layers": 0}}, "text.layers"),
])
def test_text_params_are_checked(raw, needle):
    from pipeline.core.params import ParamsError, params_from_dict

    with pytest.raises(ParamsError, match=needle.replace(".", r"\.")):
        params_from_dict(raw)
