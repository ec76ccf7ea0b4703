"""Punctuation and capitalisation restoration that keeps every word's timestamps.

The model is deepmultilingualpunctuation's (the paper's choice): a token classifier whose labels
are :data:`LABELS` — ``0`` (no mark) or the mark that follows the word. The library's own
``PunctuationModel()`` cannot be constructed on transformers 5 (it passes ``grouped_entities``,
which was removed), so :func:`load_punctuator` builds the token-classification pipeline itself with
``aggregation_strategy="none"``; the library's word cleaning (``preprocess``) and chunking with
overlap (``overlap_chunks``) are called as they are, and :func:`tag_words` applies its labelling
rule (a word takes the label of its last sub-token) with two of its slips fixed: chunks are told
apart by position rather than by comparing their words (a repeated chunk ended the overlap early),
and a word whose sub-tokens carry no label gets ``0`` as a string.

Timestamps stay with words (:func:`apply_marks`): a mark is appended to the word before it
("hello" → "hello,"), the word after a sentence end (``.`` or ``?``) and the first word are
capitalised, and no token is invented, so ``start``/``end`` of every word are unchanged. Input
words are first cleaned of marks the way the library does; a word that is nothing but marks is
dropped (it has no speech of its own).

Model (``punctuation.model``): ``none`` (skip the step), a local model directory (config, weights,
tokenizer; labels exactly :data:`LABELS`), or a Hugging Face hub name (the library's default
``oliverguhr/fullstop-punctuation-multilang-large``) on a machine with internet.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.core.assets import ASSETS, missing
from pipeline.text.transcripts import Word

log = logging.getLogger(__name__)

LABELS = ("0", ".", ",", "?", "-", ":")  # deepmultilingualpunctuation's label set
NO_MARK = "0"
SENTENCE_END = (".", "?")  # the next word is capitalised
OVERLAP_WORDS = 5  # words shared by consecutive chunks (the library's value)
SKIP = ("", "none")
HUB_URL = "https://huggingface.co"
HUB_TIMEOUT = 3.0  # seconds to wait for the hub before calling it offline


class PunctuationError(RuntimeError):
    """The punctuation model cannot be used; the message says why."""


@dataclass
class Punctuator:
    """A loaded token-classification pipeline and the name it is recorded under."""

    pipe: Any  # transformers TokenClassificationPipeline
    name: str
    chunk_words: int


def _library():
    """deepmultilingualpunctuation's ``PunctuationModel`` without its (broken) constructor."""
    from deepmultilingualpunctuation import PunctuationModel

    return PunctuationModel.__new__(PunctuationModel)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"transformers": version("transformers"),
            "deepmultilingualpunctuation": version("deepmultilingualpunctuation")}


def check_labels(id2label: dict, where: str) -> None:
    """Raise unless the model's labels are exactly :data:`LABELS`."""
    found = sorted(str(v) for v in id2label.values())
    if found != sorted(LABELS):
        raise PunctuationError(f"{where}: model labels {found} are not deepmultilingualpunctuation's "
                               f"{list(LABELS)}; punctuation.model must be a punctuation model")


def load_punctuator(value: str, chunk_words: int) -> Punctuator | None:
    """The punctuation model of ``punctuation.model`` (``None`` for ``none``)."""
    if value.strip().lower() in SKIP:
        return None
    if chunk_words <= OVERLAP_WORDS:
        raise PunctuationError(f"punctuation.chunk_words must be > {OVERLAP_WORDS}, got {chunk_words}")
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the stage has its own progress bar

    asset = ASSETS["punctuation"]
    path = Path(value).expanduser()
    local = is_local(value)
    if local:
        if not path.is_dir():
            raise missing(asset, str(path), "no such directory" if not path.exists()
                          else "expected a model directory")
        if not (path / "config.json").is_file():
            raise missing(asset, str(path), "no config.json (not a transformers model directory)")
    source = str(path) if local else cached_or_reachable(value)
    try:
        pipe = pipeline("token-classification", model=source, tokenizer=source,
                        aggregation_strategy="none", device=0 if torch.cuda.is_available() else -1)
    except Exception as e:  # offline hub name, broken directory
        why = " ".join(str(e).split())[:300] or type(e).__name__
        raise missing(asset, source if local else f"the hub download of {value!r}", why) from None
    check_labels(pipe.model.config.id2label, source)
    return Punctuator(pipe, path.name if local else value, chunk_words)


def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (fails fast on offline machines,
    where the hub client would otherwise retry for ~40 s)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", HUB_URL)).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def cached_or_reachable(name: str) -> str:
    """``name`` itself when the hub is reachable, else its snapshot in the local hub cache; a clear
    error when neither."""
    if hub_reachable():
        return name
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:
        raise missing(ASSETS["punctuation"], f"the hub download of {name!r}",
                      "no connection to the hub and not in the local hub cache") from None


def is_local(value: str) -> bool:
    """A local directory (existing, or written as a path) rather than a hub name ``owner/name``."""
    return (Path(value).expanduser().exists() or value.startswith(("/", ".", "~"))
            or value.count("/") > 1 or "\\" in value)


def clean_word(word: str) -> str:
    """``word`` without punctuation marks (except inside numbers), as the library cleans text."""
    return " ".join(_library().preprocess(word))


def tag_words(pipe: Any, words: Sequence[str], chunk_words: int) -> list[str]:
    """One label of :data:`LABELS` per word: the mark that follows it (``0`` = none).

    Words go to the model in chunks of ``chunk_words`` overlapping by :data:`OVERLAP_WORDS` (the
    library's scheme: a chunk labels its words except the last ``OVERLAP_WORDS``, which the next
    chunk labels with more context); each word takes the label of its last sub-token.
    """
    words = list(words)
    if not words:
        return []
    overlap = OVERLAP_WORDS if len(words) > chunk_words else 0
    stride = chunk_words - overlap
    batches = list(_library().overlap_chunks(words, chunk_words, overlap))
    # the first chunk that reaches the end is the last one (the library pops one trailing chunk
    # that lies inside the previous one, which is the same unless chunks are tiny)
    last = next(b for b in range(len(batches)) if b * stride + chunk_words >= len(words))
    labels: list[str] = []
    for b, batch in enumerate(batches[:last + 1]):
        keep = len(batch) if b == last else stride  # overlapping words are labelled by the next chunk
        text = " ".join(batch)
        result = pipe(text)
        if result and result[-1].get("end") is None:
            raise PunctuationError("the punctuation tokenizer gives no character offsets "
                                   "(a fast tokenizer is needed)")
        if result and result[-1]["end"] <= len(text) - len(batch[-1]):  # last word lost
            raise PunctuationError(f"punctuation model input clipped at character {result[-1]['end']} "
                                   f"of {len(text)}; lower punctuation.chunk_words ({chunk_words})")
        char_index, r = 0, 0
        for word in batch[:keep]:
            char_index += len(word) + 1
            label = NO_MARK
            while r < len(result) and char_index > result[r]["end"]:
                label = str(result[r]["entity"])
                r += 1
            labels.append(label if label in LABELS else NO_MARK)
    if len(labels) != len(words):  # the chunking above covers every word exactly once
        raise PunctuationError(f"internal: {len(labels)} labels for {len(words)} words")
    return labels


def apply_marks(words: Sequence[Word], labels: Sequence[str]) -> tuple[Word, ...]:
    """Append each word's mark and capitalise sentence starts; times are unchanged."""
    out = []
    capitalise = True
    for w, label in zip(words, labels, strict=True):
        text = w.word[:1].upper() + w.word[1:] if capitalise else w.word
        if label != NO_MARK:
            text += label
        capitalise = label in SENTENCE_END
        out.append(replace(w, word=text))
    return tuple(out)


def punctuate(punctuator: Punctuator, words: Sequence[Word]) -> tuple[Word, ...]:
    """Restore punctuation and capitals of ``words`` (time order), keeping their timestamps."""
    cleaned = [(w, clean_word(w.word)) for w in words]
    kept = [replace(w, word=c) for w, c in cleaned if c]
    if len(kept) < len(cleaned):
        log.debug("dropped %d words that were only punctuation", len(cleaned) - len(kept))
    labels = tag_words(punctuator.pipe, [w.word for w in kept], punctuator.chunk_words)
    return apply_marks(kept, labels)
