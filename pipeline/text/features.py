"""Text features per video: word embeddings and the frame → word index (the text cache).

The cache ``data/features/text/<shard>/<id>.h5`` stores what is compact (docs/caches.md):

- ``words`` ``[n_words]`` strings (after punctuation restoration), ``start`` / ``end``
  ``[n_words]`` float32 seconds;
- ``embedding`` ``[n_words, D]`` float16, one BERT vector per word (:mod:`pipeline.text.bert`);
- ``frame_word`` ``[n_frames]`` int32, the word each video frame takes, −1 for none;
- attr ``dim`` = D (so an empty transcript still says its width).

Alignment (:func:`frame_word_index`): frame ``i`` is at time ``i / fps``; it takes the word whose
``[start, end)`` contains that time, the first word in time order when several do. Frames that no
word covers get −1: zeros as features (``text.gap: zeros``, the paper) — or, with
``text.gap: hold``, the last word that started before them (from the first word to the end of
the video). The per-frame matrix ``[n_frames, D]`` is expanded at read time by
:func:`pipeline.core.frames.frame_features`.

:class:`TextChain` runs the whole text chain (ASR or a given transcript → punctuation → BERT →
cache) in-process for one video, for ``predict``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.cache import CacheKey, write_cache
from pipeline.core.params import TEXT_GAPS, Params, TextParams
from pipeline.text.bert import BertEncoder, encode_words, load_bert
from pipeline.text.bert import versions as bert_versions
from pipeline.text.transcripts import Transcript, Word, read_user_transcript

log = logging.getLogger(__name__)

EXTRACTOR = "bert-words v1"  # bump when the cache content for the same settings would change
GAPS = TEXT_GAPS
OFFLINE_ENGINE = "whisper"  # predict's ASR when the models were trained on given transcripts
FLOAT16_MAX = float(np.finfo(np.float16).max)


def frame_word_index(start: np.ndarray, end: np.ndarray, fps: float, n_frames: int,
                     gap: str = "zeros") -> np.ndarray:
    """``[n_frames]`` int32: the word (index into ``start``/``end``, time order) of each frame.

    Frame ``i`` (time ``i / fps``) takes the first word with ``start <= i / fps < end``; −1 where
    none does (``gap = "zeros"``) or, with ``gap = "hold"``, the last word started before it.
    """
    if gap not in GAPS:
        raise ValueError(f"text.gap = {gap!r}; expected one of {GAPS}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    times = np.arange(n_frames, dtype=np.float64) / fps
    idx = np.full(n_frames, -1, np.int32)
    lo = np.searchsorted(times, start, side="left")  # first frame with time >= start
    hi = np.searchsorted(times, end, side="left")  # first frame with time >= end
    for j in range(len(start) - 1, -1, -1):  # reverse: the first word wins where spans overlap
        idx[lo[j]:hi[j]] = j
    if gap == "hold" and len(start):
        started = np.searchsorted(start, times, side="right") - 1  # last word started by then
        hole = (idx < 0) & (started >= 0)
        idx[hole] = started[hole]
    return idx


def text_settings(text: TextParams, encoder: BertEncoder) -> dict:
    """What shapes a text cache's content (recorded in it; a change re-encodes the video)."""
    return {"bert": encoder.name, "weights": encoder.weights_hash, "dim": encoder.dim,
            "layers": text.layers, "max_tokens": text.max_tokens, "gap": text.gap}


def text_arrays(words: Sequence[Word], encoder: BertEncoder, text: TextParams, fps: float,
                n_frames: int) -> dict[str, np.ndarray]:
    """The datasets of one video's text cache (see the module doc) from its words (time order)."""
    start = np.array([w.start for w in words], np.float64)  # align in float64, store float32
    end = np.array([w.end for w in words], np.float64)
    emb = encode_words(encoder, [w.word for w in words], text.layers, text.max_tokens,
                       text.batch_size)
    return {
        "words": np.array([w.word for w in words], dtype=object),
        "start": start.astype(np.float32),
        "end": end.astype(np.float32),
        "embedding": np.clip(emb, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16),
        "frame_word": frame_word_index(start, end, fps, n_frames, text.gap),
    }


def text_cache_key(video_id: str, fps: float, n_frames: int, text: TextParams, encoder: BertEncoder,
                   source_hash: str) -> CacheKey:
    """The key of one video's text cache (``source_hash``: the transcript's content hash)."""
    return CacheKey("text", video_id, fps, n_frames, EXTRACTOR, text_settings(text, encoder),
                    bert_versions(), source_hash)


def write_text_features(path: str | Path, transcript: Transcript, encoder: BertEncoder,
                        text: TextParams, key: CacheKey) -> Path:
    """Encode ``transcript`` and atomically write its text cache (``key``) to ``path``."""
    arrays = text_arrays(transcript.words, encoder, text, key.fps, key.n_frames)
    return write_cache(path, arrays, key, attrs={"dim": encoder.dim,
                                                       "transcript_source": transcript.source})


def transcript_hash(transcript: Transcript) -> str:
    """A content hash of a transcript's words (the source hash of an in-process cache)."""
    blob = json.dumps([w.to_dict() for w in transcript.words], ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class TextChain:
    """The text chain in-process for one video at a time (``predict``): no DVC, no manifest.

    Models load on first use: a given transcript never loads the ASR; ``punctuation.model: none``
    never loads the punctuation model.
    """

    params: Params
    _models: dict = field(default_factory=dict, repr=False)

    def _get(self, name: str):
        if name not in self._models:
            if name == "asr":  # the configured engine; given transcripts → the offline default
                from pipeline.text.asr import RECOGNIZERS, load_recognizer

                asr = self.params.asr
                engine = asr.engine if asr.engine in RECOGNIZERS else OFFLINE_ENGINE
                self._models[name] = load_recognizer(asr, engine)
            elif name == "punctuation":
                from pipeline.text.punctuation import load_punctuator

                p = self.params.punctuation
                self._models[name] = load_punctuator(p.model, p.chunk_words)
            else:
                self._models[name] = load_bert(self.params.text.bert)
        return self._models[name]

    def transcript(self, video_id: str, wav: str | Path | None = None,
                   transcript_file: str | Path | None = None) -> Transcript:
        """Words of one video: from ``transcript_file`` (JSON/CSV) when given, else ASR on ``wav``
        (``asr.engine``; Whisper offline when the models were trained on given transcripts);
        then punctuation restoration per ``punctuation.model``."""
        if transcript_file:
            raw = read_user_transcript(transcript_file, video_id)
        elif wav is not None:
            from pipeline.core.media import read_wav

            asr = self._get("asr")
            samples, sr = read_wav(wav)
            raw = Transcript(video_id, asr.words(samples, sr), asr.source)
        else:
            raise ValueError(f"{video_id}: neither a wav file nor a transcript to take words from")
        punctuator = self._get("punctuation")
        if punctuator is None or not raw.words:
            return raw
        from pipeline.text.punctuation import punctuate

        return Transcript(video_id, punctuate(punctuator, raw.words),
                          f"{raw.source}+punctuation:{punctuator.name}")

    def write(self, path: str | Path, video_id: str, fps: float, n_frames: int,
              wav: str | Path | None = None, transcript_file: str | Path | None = None) -> Path:
        """Transcript → punctuation → BERT → the text cache at ``path`` for one video."""
        t = self.transcript(video_id, wav, transcript_file)
        if not t.words:
            log.warning("%s: no words (silence or music?); text features are zeros", video_id)
        bert = self._get("bert")
        key = text_cache_key(video_id, fps, n_frames, self.params.text, bert, transcript_hash(t))
        return write_text_features(path, t, bert, self.params.text, key)
