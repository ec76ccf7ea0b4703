"""A words-only dataset on the real text path, for tests and bench/collapse.py (issue 12 item 3).

Real English words through the real text features: the demo generator's sentence templates
filled with its valence-graded word lists (``rjcma.demo.speech``), encoded by the packaged minilm
BERT (:func:`pipeline.text.bert.encode_words`, ``text.layers`` summed, per word) and aligned to
frames by :func:`pipeline.text.features.frame_word_index` (``text.gap``: zeros by default), held
as the text cache's own datasets (``embedding`` per word + ``frame_word``) in memory
(:class:`fusion.data.MemoryCache`, read by the same ``frame_rows`` as the HDF5 file). Audio and
visual are constant over every video (silent audio, grey frames), so only the words carry signal:

- each video is a conversation of sentences (a slow random walk picks each sentence's mood
  level, 0..4), words 0.25-0.6 s long, short gaps between words, pauses between sentences and
  now and then a long silence;
- the annotator's target is the valence of the last graded word heard, held through silence,
  followed with a lag and a first-order lag (raters trail the stimulus), rounded to 3 decimals
  like Aff-Wild2's files: silent stretches have near-constant labels and all-zero text.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fusion.data import ArrayVideo, MemoryCache
from pipeline.text.bert import encode_words, load_bert
from pipeline.text.features import frame_word_index
from rjcma.demo.speech import TEMPLATES, WORDS

FPS = 10.0  # the demo's frame rate (window 64 = 6.4 s)
SECONDS = (30.0, 60.0)  # video duration range
WORD_SECONDS = (0.25, 0.6)
WORD_GAP = (0.02, 0.12)  # seconds between words of a sentence
PAUSE = (0.2, 1.2)  # seconds between sentences
SILENCE_P, SILENCE_SECONDS = 0.15, (3.0, 12.0)  # a long silence after a sentence now and then
MOOD_STEP = 0.6  # std of the sentence mood's random walk (levels, 0..4)
LEVEL_VALENCE = np.array([-0.8, -0.4, 0.0, 0.4, 0.8])  # the annotator's reading of each word level
ANNOTATOR_LAG = 0.5  # seconds
ANNOTATOR_TIME = 1.5  # seconds, the first-order lag's time constant
DRIFT_TIME = 8.0  # seconds: time constant of the words-independent part of the labels (``unexplained``)
GREY, SILENT = 0.5, -1.2  # the constant visual (pixels) and audio (log-mel / VGGish-like) values
DIMS = {"audio": 128, "visual": 256}  # VGGish and the 16 x 16 pixels backbone

@dataclasses.dataclass
class WordsVideo:
    id: str
    words: list[str]
    start: np.ndarray  # [n_words] seconds
    end: np.ndarray
    valence: np.ndarray  # [n_frames] labels


def conversation(rng: np.random.Generator, seconds: float
                 ) -> tuple[list[str], list[float], list[float], list[int]]:
    """Words (sentence ends punctuated), start/end seconds and the valence level of each word
    (-1 for the template's own words, which carry no valence)."""
    words, starts, ends, levels = [], [], [], []
    t, mood = float(rng.uniform(0.1, 1.0)), float(rng.uniform(0, 4))
    while True:
        mood = float(np.clip(mood + rng.normal(0, MOOD_STEP), 0, 4))
        level = int(round(mood))
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        fill = iter(rng.choice(len(WORDS[level]), template.count("{}"), replace=False))
        tokens = template.split()
        for k, token in enumerate(tokens):
            graded = token == "{}"
            word = WORDS[level][int(next(fill))] if graded else token
            length = float(rng.uniform(*WORD_SECONDS))
            if t + length > seconds:
                return words, starts, ends, levels
            words.append(word + ("." if k == len(tokens) - 1 else ""))
            starts.append(t)
            ends.append(t + length)
            levels.append(level if graded else -1)
            t += length + float(rng.uniform(*WORD_GAP))
        t += float(rng.uniform(*PAUSE))
        if rng.random() < SILENCE_P:
            t += float(rng.uniform(*SILENCE_SECONDS))


def annotate(ends: list[float], levels: list[int], n_frames: int) -> np.ndarray:
    """``[n_frames]`` float32: the lagged first-order-lag response to the last graded word heard."""
    target = np.zeros(n_frames)
    times = np.arange(n_frames) / FPS
    current = 0.0
    heard = sorted((e + ANNOTATOR_LAG, LEVEL_VALENCE[lv]) for e, lv in zip(ends, levels) if lv >= 0)
    k = 0
    for i, t in enumerate(times):
        while k < len(heard) and heard[k][0] <= t:
            current = heard[k][1]
            k += 1
        target[i] = current
    alpha = 1.0 - math.exp(-1.0 / (ANNOTATOR_TIME * FPS))
    y = np.zeros(n_frames)
    for i in range(n_frames):
        y[i] = (y[i - 1] if i else target[0]) + alpha * (target[i] - (y[i - 1] if i else target[0]))
    return np.round(y, 3).astype(np.float32)


def drift(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """``[n_frames]`` a smooth unit-std signal no input carries (the rater's own slow wander)."""
    alpha = 1.0 / (DRIFT_TIME * FPS)
    noise = rng.normal(size=n_frames + int(3 * DRIFT_TIME * FPS))
    z = np.zeros_like(noise)
    for t in range(1, len(noise)):
        z[t] = (1 - alpha) * z[t - 1] + alpha * noise[t]
    z = z[-n_frames:]
    return (z - z.mean()) / (z.std() + 1e-8)


def make_videos(n: int, seed: int, prefix: str, unexplained: float = 0.0,
                seconds_range: tuple[float, float] = SECONDS) -> list[WordsVideo]:
    """``n`` videos; labels = ``(1 - unexplained) * words + unexplained * 0.5 * drift``, clipped."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        seconds = float(rng.uniform(*seconds_range))
        n_frames = int(seconds * FPS)
        words, starts, ends, levels = conversation(rng, seconds)
        y = annotate(ends, levels, n_frames)
        if unexplained > 0:
            y = np.clip((1 - unexplained) * y + unexplained * 0.5 * drift(rng, n_frames), -1, 1)
            y = np.round(y, 3).astype(np.float32)
        out.append(WordsVideo(f"{prefix}{i:03d}", words, np.array(starts), np.array(ends), y))
    return out


def as_array_videos(videos: list[WordsVideo], encoder, text) -> list[ArrayVideo]:
    """The real text cache layout in memory (``embedding`` per word + ``frame_word``), constant
    audio and visual, labels ``[T, 1]`` (valence)."""
    out = []
    for v in videos:
        n = len(v.valence)
        emb = encode_words(encoder, v.words, text.layers, text.max_tokens, text.batch_size)
        frame_word = frame_word_index(v.start, v.end, FPS, n, text.gap)
        caches = {
            "text": MemoryCache({"embedding": emb.astype(np.float16).astype(np.float32),  # stored float16
                                 "frame_word": frame_word},
                                {"modality": "text", "n_frames": n, "fps": FPS, "dim": encoder.dim}),
            "audio": MemoryCache({"frames": np.full((n, DIMS["audio"]), SILENT, np.float32)},
                                 {"modality": "audio", "n_frames": n, "fps": FPS, "frame_dataset": "frames"}),
            "visual": MemoryCache({"embedding": np.full((n, DIMS["visual"]), GREY, np.float32)},
                                  {"modality": "visual", "n_frames": n, "fps": FPS}),
        }
        dims = {"text": encoder.dim, **DIMS}
        out.append(ArrayVideo(v.id, n, caches, v.valence[:, None], ("valence",), dims))
    return out


def dataset(n_train: int, n_val: int, seed: int, text, unexplained: float = 0.0,
            seconds_range: tuple[float, float] = SECONDS):
    """``(train, validation, summary)``: ArrayVideos (labels ``[T, 1]``, valence) for ``text``
    (:class:`pipeline.core.params.TextParams`) and a summary of the data."""
    encoder = load_bert(text.bert)
    train = make_videos(n_train, seed, "train", unexplained, seconds_range)
    val = make_videos(n_val, seed + 10_000, "val", unexplained, seconds_range)
    frames = sum(len(v.valence) for v in train)
    worded = sum(int((frame_word_index(v.start, v.end, FPS, len(v.valence), text.gap) >= 0).sum())
                 for v in train)
    summary = {"train_videos": n_train, "val_videos": n_val, "train_frames": frames,
               "frames_with_a_word": round(worded / frames, 3),
               "label_std": round(float(np.concatenate([v.valence for v in train]).std()), 3)}
    return as_array_videos(train, encoder, text), as_array_videos(val, encoder, text), summary
