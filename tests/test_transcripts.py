"""Transcript files: the pipeline's JSON round trip and skip key, and transcripts users provide."""

from __future__ import annotations

import json

import pytest

from pipeline.text.transcripts import (
    Transcript,
    TranscriptError,
    Word,
    find_user_transcript,
    is_current,
    read_transcript,
    read_user_transcript,
    write_transcript,
)

KEY = dict(settings={"engine": "vosk", "model": "m", "chunk_seconds": 0.5}, input_hash="abc",
           versions={"vosk": "0.3.45"})


def test_json_round_trip_and_skip_key(tmp_path):
    t = Transcript("v1", (Word("hello", 0.1, 0.5, 0.9), Word("wörld", 0.5, 1.25)), "vosk:m")
    path = write_transcript(tmp_path / "a" / "v1.json", t, **KEY)
    back = read_transcript(path)
    assert back == t
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["words"][1] == {"word": "wörld", "start": 0.5, "end": 1.25, "conf": 1.0}
    assert stored["source"] == "vosk:m" and stored["video_id"] == "v1"
    assert is_current(path, **KEY)
    assert not is_current(path, **{**KEY, "input_hash": "abd"})
    assert not is_current(path, **{**KEY, "settings": {**KEY["settings"], "chunk_seconds": 0.25}})
    assert not is_current(tmp_path / "missing.json", **KEY)
    (tmp_path / "broken.json").write_text("{")
    assert not is_current(tmp_path / "broken.json", **KEY)


def test_empty_transcript_round_trip(tmp_path):
    path = write_transcript(tmp_path / "e.json", Transcript("e", (), "vosk:m"), **KEY)
    assert read_transcript(path).words == ()


def test_user_json_list_and_object(tmp_path):
    rows = [{"word": "b", "start": 1.0, "end": 1.5}, {"word": " a  ", "start": 0.0, "end": 0.5,
                                                        "conf": 0.5}]
    (tmp_path / "x.json").write_text(json.dumps(rows))
    t = read_user_transcript(tmp_path / "x.json", "vid")
    assert t.video_id == "vid" and t.source == "transcript:x.json"
    assert t.words == (Word("a", 0.0, 0.5, 0.5), Word("b", 1.0, 1.5, 1.0))  # sorted, trimmed
    (tmp_path / "y.json").write_text(json.dumps({"words": rows}))
    assert read_user_transcript(tmp_path / "y.json").words == t.words


def test_user_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text("word,start,end\nhello,0.0,0.4\n\"well, then\",0.5,0.9\n")
    words = read_user_transcript(tmp_path / "h.csv").words
    assert words == (Word("hello", 0.0, 0.4), Word("well, then", 0.5, 0.9))
    (tmp_path / "n.csv").write_text("hello,0.0,0.4,0.8\n\nthere, 0.5 , 0.9\n")
    words = read_user_transcript(tmp_path / "n.csv").words
    assert words == (Word("hello", 0.0, 0.4, 0.8), Word("there", 0.5, 0.9))
    (tmp_path / "c.csv").write_text("start,end,word,conf\n0.1,0.2,hi,0.3\n")
    assert read_user_transcript(tmp_path / "c.csv").words == (Word("hi", 0.1, 0.2, 0.3),)


@pytest.mark.parametrize("name,content,needle", [
    ("bad.csv", "word,start,end\nhello,0.0,0.4\nworld,zero,1\n", "line 3: start 'zero' is not a number"),
    ("bad.csv", "hello,0.5,0.4\n", "line 1: end 0.4 is before start 0.5"),
    ("bad.csv", "hello,0.5\n", "line 1: expected word,start,end"),
    ("bad.csv", "word,begin,end\nhello,0,1\n", "line 1: header lacks ['start']"),
    ("bad.csv", " ,0,1\n", "line 1: empty word"),
    ("bad.csv", "x,-1,1\n", "line 1: start -1.0 is negative"),
    ("bad.json", '[{"word": "a", "start": 0, "end": 1}, {"word": "b", "start": 1}]',
     "entry 1: missing ['end']"),
    ("bad.json", '[{"word": "a", "start": 0, "end": "nan"}]', "entry 0: end 'nan' is not a finite number"),
    ("bad.json", '{"text": "hello"}', 'no "words" list'),
    ("bad.json", "[1, 2", "not a readable JSON transcript"),
    ("bad.txt", "hello", "unknown transcript format"),
])
def test_bad_user_transcripts_name_file_and_line(tmp_path, name, content, needle):
    (tmp_path / name).write_text(content)
    with pytest.raises(TranscriptError) as e:
        read_user_transcript(tmp_path / name)
    assert str(tmp_path / name) in str(e.value) and needle in str(e.value)


def test_find_user_transcript(tmp_path):
    folder = tmp_path / "transcripts"
    folder.mkdir()
    (folder / "src.csv").write_text("a,0,1\n")
    # a two-person video's person falls back to the source video's transcript
    assert find_user_transcript("src_left", "src", "", tmp_path, "transcripts") == folder / "src.csv"
    (folder / "src_left.json").write_text("[]")
    assert find_user_transcript("src_left", "src", "", tmp_path, "transcripts") == folder / "src_left.json"
    # the manifest's transcript_file wins
    listed = str(folder / "src.csv")
    assert find_user_transcript("v", "v", listed, tmp_path, "transcripts") == folder / "src.csv"
    with pytest.raises(TranscriptError, match=r"no transcript for video 'other'.*other\.json, other\.csv"):
        find_user_transcript("other", "other", "", tmp_path, "transcripts")
    with pytest.raises(TranscriptError, match="listed in the manifest is missing"):
        find_user_transcript("v", "v", str(folder / "gone.json"), tmp_path, "transcripts")
