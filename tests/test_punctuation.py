"""Punctuation restoration with a tiny token classifier built here (deepmultilingualpunctuation's
label set, output known by construction), loaded through the real transformers pipeline."""

from __future__ import annotations

import json

import pytest

from pipeline.core.assets import AssetError
from pipeline.text.punctuation import (
    PunctuationError,
    _library,
    apply_marks,
    load_punctuator,
    punctuate,
    tag_words,
)
from pipeline.text.transcripts import Word
from tests.text_fixtures import make_punctuation_model

SENTENCE = "hello there stop how are you why i said colon this dash that and more".split()
LABELS = ["0", "0", ".", "0", "0", "0", "?", "0", "0", ":", "0", "-", "0", ",", "0"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_punctuation_model(tmp_path_factory.mktemp("punct") / "tiny")


@pytest.fixture(scope="module")
def punctuator(model_dir):
    return load_punctuator(str(model_dir), chunk_words=230)


def timed(words):
    return [Word(w, 0.5 * i, 0.5 * i + 0.4, 0.9) for i, w in enumerate(words)]


def test_labels_of_the_tiny_model(punctuator):
    assert tag_words(punctuator.pipe, SENTENCE, 230) == LABELS


def test_same_labels_as_the_library_predict(punctuator):
    """Our chunking/labelling equals deepmultilingualpunctuation's own predict (which hard-codes
    230-word chunks with a 5-word overlap) on a text long enough to need several chunks."""
    words = SENTENCE * 40  # 600 words: 3 overlapping chunks
    lib = _library()
    lib.pipe = punctuator.pipe
    assert tag_words(punctuator.pipe, words, 230) == [label for _, label, _ in lib.predict(words)]


@pytest.mark.parametrize("chunk_words", [6, 7, 14, 16, 1000])
def test_chunking_does_not_change_labels(punctuator, chunk_words):
    words = SENTENCE * 3
    assert tag_words(punctuator.pipe, words, chunk_words) == LABELS * 3


def test_timestamps_kept_marks_attached_capitals_restored(punctuator):
    words = timed(SENTENCE)
    out = punctuate(punctuator, words)
    assert " ".join(w.word for w in out) == \
        "Hello there stop. How are you why? I said colon: this dash- that and, more"
    assert [(w.start, w.end, w.conf) for w in out] == [(w.start, w.end, w.conf) for w in words]


def test_existing_marks_are_cleaned_and_mark_only_words_dropped(punctuator):
    words = [Word("hello,", 0, 1), Word("...", 1, 2), Word("3.5", 2, 3), Word("stop", 3, 4),
             Word("ok", 4, 5)]
    out = punctuate(punctuator, words)
    assert [(w.word, w.start) for w in out] == [("Hello", 0), ("3.5", 2), ("stop.", 3), ("Ok", 4)]


def test_non_english_and_empty_input(punctuator):
    assert punctuate(punctuator, []) == ()
    words = timed(["안녕하세요", "stop", "ça", "\u200b", "va?"])
    out = punctuate(punctuator, words)
    assert [w.word for w in out][:3] == ["안녕하세요", "stop.", "Ça"]
    assert all(w.start == words[[v.start for v in words].index(w.start)].start for w in out)


def test_apply_marks_is_pure():
    words = timed(["a", "b", "c"])
    assert [w.word for w in apply_marks(words, ["?", "0", "."])] == ["A?", "B", "c."]


def test_none_skips_and_bad_models_are_clear_errors(tmp_path, model_dir):
    assert load_punctuator("none", 230) is None
    with pytest.raises(AssetError, match=r"punctuation\.model"):
        load_punctuator(str(tmp_path / "missing"), 230)
    # a token classifier with other labels is not a punctuation model
    other = tmp_path / "other"
    other.mkdir()
    for f in model_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((other / "config.json").read_text())
    cfg["id2label"] = {str(i): f"L{i}" for i in range(6)}
    cfg["label2id"] = {f"L{i}": i for i in range(6)}
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PunctuationError, match="not deepmultilingualpunctuation's"):
        load_punctuator(str(other), 230)
    with pytest.raises(PunctuationError, match="chunk_words"):
        load_punctuator(str(model_dir), 5)


def test_hub_name_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(AssetError) as e:
        load_punctuator("oliverguhr/fullstop-punctuation-multilang-large", 230)
    assert "huggingface.co/oliverguhr" in str(e.value) and "punctuation.model" in str(e.value)


def test_chunk_longer_than_the_model_is_a_clear_error(punctuator):
    with pytest.raises(PunctuationError, match=r"clipped.*lower punctuation\.chunk_words"):
        tag_words(punctuator.pipe, SENTENCE * 40, 1000)  # 600 words > 512 positions
