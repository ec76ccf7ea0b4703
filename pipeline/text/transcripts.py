"""Word-level transcripts: the JSON format the text stages exchange, and transcripts users provide.

A transcript is a list of :class:`Word` (text, start and end in seconds, ASR confidence) in time
order. The ASR stage (``data/interim/asr/<shard>/<id>.json``) and the punctuation stage
(``data/interim/transcripts/<shard>/<id>.json``) write the same JSON::

    {"video_id": "v1", "source": "vosk:vosk-model-small-en-us-0.15",
     "words": [{"word": "hello", "start": 0.42, "end": 0.81, "conf": 0.97}, ...],
     "settings": {...}, "input_hash": "…", "key": "…"}

``key`` is a hash of ``settings`` + ``input_hash`` + library versions: a rerun skips a video whose
output carries the key it would write (:func:`is_current`).

Users who already have word timings (``asr.engine: transcripts``) put one file per video in
``<data.root>/<asr.transcripts_dir>/<id>.json`` or ``<id>.csv`` (a two-person video's
``<id>_left`` may use the source video's ``<id>.json``):

- JSON: a list ``[{"word": "hello", "start": 0.42, "end": 0.81}, ...]`` (an optional ``conf``), or
  an object with such a list under ``"words"`` (so this pipeline's own output can be reused);
- CSV: rows ``word,start,end`` (optional ``conf`` column), with or without a header row.

Every problem is reported with the file and, where there is one, the entry or line number.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.atomic import write_json
from pipeline.core.cache import cache_key
from pipeline.core.layout import TRANSCRIPT_EXTENSIONS, find_transcript, transcript_candidates

log = logging.getLogger(__name__)

FIELDS = ("word", "start", "end")  # required per word; "conf" is optional (default 1.0)
EXTENSIONS = TRANSCRIPT_EXTENSIONS
NO_WORDS = ("no words",)  # the stage condition of an empty transcript (transcribe, text_features)


class TranscriptError(ValueError):
    """A transcript file that cannot be used; the message names the file (and line/entry)."""


@dataclass(frozen=True)
class Word:
    """One spoken word and its time span ``[start, end)`` in seconds."""

    word: str
    start: float
    end: float
    conf: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"word": self.word, "start": self.start, "end": self.end, "conf": self.conf}


@dataclass(frozen=True)
class Transcript:
    """The words of one video, in time order, and where they came from (``engine:model``)."""

    video_id: str
    words: tuple[Word, ...]
    source: str

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)


def _number(value: Any, what: str, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TranscriptError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise TranscriptError(f"{where}: {what} {value!r} is not a finite number")
    return x


def make_word(word: Any, start: Any, end: Any, conf: Any, where: str) -> Word:
    """A checked :class:`Word`: non-empty text (whitespace collapsed), 0 <= start <= end."""
    if not isinstance(word, str):
        raise TranscriptError(f"{where}: word {word!r} is not a string")
    text = " ".join(word.split())
    if not text:
        raise TranscriptError(f"{where}: empty word")
    s, e = _number(start, "start", where), _number(end, "end", where)
    c = 1.0 if conf is None or conf == "" else _number(conf, "conf", where)
    if s < 0:
        raise TranscriptError(f"{where}: start {s} is negative")
    if e < s:
        raise TranscriptError(f"{where}: end {e} is before start {s}")
    return Word(text, s, e, c)


def sort_words(words: Sequence[Word], path: str | Path) -> tuple[Word, ...]:
    """``words`` in time order (stable by start); logs when the file had them out of order."""
    ordered = tuple(sorted(words, key=lambda w: w.start))
    if list(ordered) != list(words):
        log.warning("%s: words were not in time order; sorted them by start", path)
    return ordered


# --- the pipeline's own JSON ------------------------------------------------------------------

def transcript_key(settings: Mapping[str, Any], input_hash: str,
                   versions: Mapping[str, Any]) -> str:
    """The skip-if-current key of a transcript produced with ``settings`` from ``input_hash``."""
    return cache_key({"settings": dict(settings), "input_hash": input_hash,
                      "versions": dict(versions)})


def write_transcript(path: str | Path, transcript: Transcript, *, settings: Mapping[str, Any],
                     input_hash: str, versions: Mapping[str, Any]) -> Path:
    """Atomically write ``transcript`` as JSON with its skip-if-current key. Returns ``path``."""
    write_json(path, {
        "video_id": transcript.video_id, "source": transcript.source,
        "words": [w.to_dict() for w in transcript.words],
        "settings": dict(settings), "versions": dict(versions), "input_hash": input_hash,
        "key": transcript_key(settings, input_hash, versions)})
    return Path(path)


def is_current(path: str | Path, *, settings: Mapping[str, Any], input_hash: str,
               versions: Mapping[str, Any]) -> bool:
    """True when ``path`` is a readable transcript written with exactly this key."""
    try:
        stored = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(stored, dict) and stored.get("key") == transcript_key(settings, input_hash,
                                                                             versions)


def _words_from_records(records: Any, path: Path) -> tuple[Word, ...]:
    if not isinstance(records, list):
        raise TranscriptError(f"{path}: expected a list of {{word, start, end}} objects")
    words = []
    for i, r in enumerate(records):
        where = f"{path}: entry {i}"
        if not isinstance(r, dict):
            raise TranscriptError(f"{where}: expected an object with {list(FIELDS)}, got {r!r}")
        absent = [k for k in FIELDS if k not in r]
        if absent:
            raise TranscriptError(f"{where}: missing {absent} (has {sorted(r)})")
        words.append(make_word(r["word"], r["start"], r["end"], r.get("conf"), where))
    return sort_words(words, path)


def read_transcript(path: str | Path) -> Transcript:
    """Read a transcript JSON written by :func:`write_transcript` (or any JSON transcript)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TranscriptError(f"{path}: transcript missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise TranscriptError(f"{path}: not a readable JSON transcript ({e})") from None
    if isinstance(raw, dict):
        if "words" not in raw:
            raise TranscriptError(f"{path}: no \"words\" list (keys: {sorted(raw)})")
        return Transcript(str(raw.get("video_id", path.stem)), _words_from_records(raw["words"], path),
                          str(raw.get("source", "")))
    return Transcript(path.stem, _words_from_records(raw, path), "")


# --- transcripts the user provides ------------------------------------------------------------

def _read_csv(path: Path) -> tuple[Word, ...]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise TranscriptError(f"{path}: not a readable UTF-8 CSV file ({e})") from None
    rows = [(n, row) for n, row in enumerate(csv.reader(text.splitlines()), start=1)
            if row and any(c.strip() for c in row)]
    columns = {"word": 0, "start": 1, "end": 2, "conf": 3}
    if rows:
        first = [c.strip().lower() for c in rows[0][1]]
        if "word" in first:  # a header row names the columns
            absent = [k for k in FIELDS if k not in first]
            if absent:
                raise TranscriptError(f"{path}: line {rows[0][0]}: header lacks {absent}")
            columns = {k: first.index(k) for k in ("word", "start", "end", "conf") if k in first}
            rows = rows[1:]
    words = []
    for n, row in rows:
        where = f"{path}: line {n}"
        need = max(columns[k] for k in FIELDS) + 1
        if len(row) < need:
            raise TranscriptError(f"{where}: expected word,start,end; got {row!r}")
        conf = row[columns["conf"]] if "conf" in columns and columns["conf"] < len(row) else None
        words.append(make_word(row[columns["word"]], row[columns["start"]].strip(),
                               row[columns["end"]].strip(), conf, where))
    return sort_words(words, path)


def read_user_transcript(path: str | Path, video_id: str = "") -> Transcript:
    """A word-level transcript the user provides (``.json`` or ``.csv``, see the module doc)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        words = _read_csv(path)
    elif path.suffix.lower() == ".json":
        words = read_transcript(path).words
    else:
        raise TranscriptError(f"{path}: unknown transcript format; expected one of {EXTENSIONS}")
    return Transcript(video_id or path.stem, words, f"transcript:{path.name}")


def find_user_transcript(video_id: str, source_id: str, transcript_file: str,
                         data_root: str | Path, transcripts_dir: str) -> Path:
    """The transcript file for one video: the manifest's ``transcript_file`` when set, else
    ``<data_root>/<transcripts_dir>/<video_id or source_id>.json|csv``; a clear error if none."""
    if transcript_file:
        path = Path(transcript_file)
        if not path.is_file():
            raise TranscriptError(f"{path}: transcript listed in the manifest is missing")
        return path
    folder = Path(data_root) / transcripts_dir
    path = find_transcript(folder, video_id, source_id)
    if path is not None:
        return path
    tried = [p.name for p in transcript_candidates(folder, video_id, source_id)]
    raise TranscriptError(f"{folder}: no transcript for video {video_id!r} (tried {', '.join(tried)}); "
                          f"provide one (JSON or CSV of word,start,end) or set asr.engine: vosk")
