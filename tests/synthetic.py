"""A synthetic multimodal dataset in the real on-disk format, for tests and benchmarks.

Each video has two slow latent signals per modality (one for valence, one for arousal). A
modality's per-frame features are a fixed random projection of its two latents plus noise; text is
word-like: the latent is held constant over a "word" of a few frames, one embedding per word, with
gaps between words where the frame has no word (the reader gives zeros there, as for real text).
The labels need all three modalities over time:

    valence(t) = tanh(GAIN * mean_{u in (t-SMOOTH, t]} (a1(u) + v1(u) + w1(u)) / sqrt(3))

(arousal likewise from the second latents, with the visual term's sign flipped), where w1 is the
text latent as the reader sees it (0 in gaps). No single modality explains more than about a third
of the variance.

:func:`write_dataset` writes the manifest (``videos.json`` + shards), ``labels.h5``, ``folds.json``
and one HDF5 cache per video and modality with :func:`pipeline.core.cache.write_cache`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.audio.patches import N_MELS, PATCH_ROWS
from pipeline.core import layout
from pipeline.core.atomic import write_json
from pipeline.core.cache import CacheKey, write_cache
from pipeline.core.manifest import VideoEntry, shard_of, write_shards
from pipeline.core.params import VisualParams
from pipeline.dataset.labels import write_labels

FPS = 30.0
LATENT_TIME = 12.0  # frames: time constant of the latents' exponential smoothing
SMOOTH = 8  # frames: the labels average the latent mix over this causal window
GAIN = 1.2
NOISE = 0.1  # feature noise std (latents have unit std)
WORD_FRAMES = (4, 12)  # a word spans this many frames (inclusive range)
GAP_FRAMES = (0, 3)  # frames without a word between words
DEFAULT_DIMS = {"audio": 16, "visual": 16, "text": 16}
EXTRACTOR = "synthetic"
FACE_SIZE = VisualParams().face_size  # raw inputs of the fine-tuning path: faces [T, 48, 48, 3] uint8
LOGMEL_RATE = 100.0  # and the 10 ms log-mel rows the audio cache stores


@dataclass
class SyntheticVideo:
    """Per-frame arrays of one synthetic video (T frames)."""

    audio: np.ndarray  # [T, D_a] float32
    visual: np.ndarray  # [T, D_v] float32
    text_embedding: np.ndarray  # [n_words, D_t] float16
    frame_word: np.ndarray  # [T] int32, -1 = no word
    valence: np.ndarray  # [T] float32 in (-1, 1)
    arousal: np.ndarray  # [T] float32


def _latents(rng: np.random.Generator, n_frames: int, n: int) -> np.ndarray:
    """``[T, n]`` smooth unit-std random signals (exponentially smoothed white noise)."""
    alpha = 1.0 / LATENT_TIME
    noise = rng.normal(size=(n_frames + 3 * int(LATENT_TIME), n))
    z = np.zeros_like(noise)
    for t in range(1, len(noise)):
        z[t] = (1 - alpha) * z[t - 1] + alpha * noise[t]
    z = z[3 * int(LATENT_TIME):]
    return (z - z.mean(0)) / (z.std(0) + 1e-8)


def _causal_mean(x: np.ndarray, width: int) -> np.ndarray:
    """``[T]`` mean of ``x[max(0, t-width+1) : t+1]``."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    t = np.arange(len(x))
    lo = np.maximum(0, t - width + 1)
    return (c[t + 1] - c[lo]) / (t + 1 - lo)


def projections(dims: Mapping[str, int], seed: int) -> dict[str, np.ndarray]:
    """Fixed per-dataset ``{modality: [2, D_m]}`` maps from the two latents to the features."""
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(2, d)) / np.sqrt(2.0) for m, d in dims.items()}


def make_video(rng: np.random.Generator, n_frames: int, proj: Mapping[str, np.ndarray]) -> SyntheticVideo:
    """One video of ``n_frames`` frames with the projections ``proj`` (see :func:`projections`)."""
    lat = {m: _latents(rng, n_frames, 2) for m in ("audio", "visual", "text")}
    # text: one latent value per word, held over the word's frames; no word in the gaps
    frame_word = np.full(n_frames, -1, np.int32)
    words = []
    t = int(rng.integers(0, GAP_FRAMES[1] + 1))
    while t < n_frames:
        length = int(rng.integers(WORD_FRAMES[0], WORD_FRAMES[1] + 1))
        frame_word[t:t + length] = len(words)
        words.append(lat["text"][t])
        t += length + int(rng.integers(GAP_FRAMES[0], GAP_FRAMES[1] + 1))
    words_lat = np.asarray(words).reshape(-1, 2)
    text_seen = np.where((frame_word >= 0)[:, None], words_lat[np.maximum(frame_word, 0)], 0.0)

    def feats(z: np.ndarray, m: str) -> np.ndarray:
        return (z @ proj[m] + NOISE * rng.normal(size=(len(z), proj[m].shape[1]))).astype(np.float32)

    mix_v = (lat["audio"][:, 0] + lat["visual"][:, 0] + text_seen[:, 0]) / np.sqrt(3.0)
    mix_a = (lat["audio"][:, 1] - lat["visual"][:, 1] + text_seen[:, 1]) / np.sqrt(3.0)
    return SyntheticVideo(
        audio=feats(lat["audio"], "audio"),
        visual=feats(lat["visual"], "visual"),
        text_embedding=feats(words_lat, "text").astype(np.float16),
        frame_word=frame_word,
        valence=np.tanh(GAIN * _causal_mean(mix_v, SMOOTH)).astype(np.float32),
        arousal=np.tanh(GAIN * _causal_mean(mix_a, SMOOTH)).astype(np.float32),
    )


def raw_inputs(video: SyntheticVideo, fps: float = FPS) -> dict[str, np.ndarray]:
    """The fine-tuning path's raw inputs, derived from the video's features (deterministic):
    ``faces`` ``[T, 48, 48, 3]`` uint8 (a fixed pattern shifted by the visual features per frame),
    ``face_present`` ``[T]`` bool (every 7th frame without a face) and ``logmel``
    ``[n_rows, 64]`` float32 at 100 rows/s (each row from the audio features of its frame), as
    long as extraction makes it (the 1 s end padding included)."""
    n = len(video.frame_word)
    pattern = np.add.outer(np.arange(FACE_SIZE), np.arange(FACE_SIZE))[..., None] * np.array([2, 3, 5])
    pattern = (pattern % 200 + 28).astype(np.int16)  # [S, S, 3]
    shift = np.round(40 * np.tanh(video.visual[:, np.arange(3) % video.visual.shape[1]]))  # [T, 3]
    faces = (pattern[None] + shift[:, None, None, :].astype(np.int16)).clip(0, 255)  # [T, S, S, 3]
    present = np.arange(n) % 7 != 3
    faces[~present] = 0
    n_rows = int(round((n / fps + 1.0) * LOGMEL_RATE)) - 2
    frame = np.minimum(n - 1, (np.arange(n_rows) * fps / LOGMEL_RATE).astype(np.int64))
    cols = np.arange(N_MELS) % video.audio.shape[1]
    logmel = (video.audio[frame][:, cols] - 2.0).astype(np.float32)
    return {"faces": faces.astype(np.uint8), "face_present": present, "logmel": logmel}


def write_video_caches(video: SyntheticVideo, video_id: str, shard: int, data_root,
                       modalities: Sequence[str] = ("audio", "visual", "text"), raw: bool = False) -> None:
    """Write the video's caches in the real formats that :func:`pipeline.core.frames.frame_features` reads.

    ``raw``: also the datasets the fine-tuning path reads (:func:`raw_inputs`: visual ``faces``,
    audio ``logmel``), as the real feature stages store them.
    """
    data_root = Path(data_root)
    n = len(video.frame_word)
    n_words = len(video.text_embedding)
    first = np.array([np.argmax(video.frame_word == w) for w in range(n_words)], np.float32)
    last = np.array([n - 1 - np.argmax(video.frame_word[::-1] == w) for w in range(n_words)], np.float32)
    arrays = {
        "audio": {"vggish": video.audio},
        "visual": {"embedding": video.visual, "face_present": np.ones(n, bool)},
        "text": {"embedding": video.text_embedding, "frame_word": video.frame_word,
                 "words": np.asarray([f"w{i}" for i in range(n_words)], object),
                 "start": first / FPS, "end": (last + 1) / FPS},
    }
    attrs = {"audio": {"frame_dataset": "vggish"}, "visual": {},
             "text": {"dim": int(video.text_embedding.shape[1])}}
    if raw:
        extra = raw_inputs(video)
        arrays["visual"].update(faces=extra["faces"], face_present=extra["face_present"])
        arrays["audio"]["logmel"] = extra["logmel"]
        attrs["audio"].update(rows_per_second=LOGMEL_RATE, patch_rows=PATCH_ROWS)
    for m in modalities:
        key = CacheKey(m, video_id, FPS, n, EXTRACTOR, {}, {}, video_id)
        write_cache(layout.feature_path(m, shard, video_id, data_root), arrays[m], key, attrs=attrs[m])


def write_dataset(data_root, partitions: Mapping[str, int], n_frames: int | Sequence[int],
                  dims: Mapping[str, int] = DEFAULT_DIMS, seed: int = 0, shards: int = 2,
                  unlabeled_fraction: float = 0.0, raw: bool = False) -> dict[str, list[str]]:
    """Write a complete synthetic dataset under ``data_root`` (the ``data/`` directory).

    ``partitions``: videos per partition, e.g. ``{"train": 8, "validation": 3, "test": 2}``;
    ``n_frames``: frames per video (one number, or cycled through a list). ``unlabeled_fraction``
    of frames (random runs) get NaN labels. Test videos get no labels. ``raw``: the caches also
    hold the fine-tuning path's raw inputs (see :func:`write_video_caches`). ``folds.json`` holds one
    fold (the given train/validation split). Returns ``{partition: [ids]}``.
    """
    data_root = Path(data_root)
    rng = np.random.default_rng(seed)
    proj = projections(dims, seed + 1)
    lengths = [n_frames] if isinstance(n_frames, int) else list(n_frames)
    ids: dict[str, list[str]] = {}
    entries, labels = [], {}
    k = 0
    for part, count in partitions.items():
        ids[part] = []
        for i in range(count):
            vid = f"{part}{i:03d}"
            n = lengths[k % len(lengths)]
            k += 1
            video = make_video(rng, n, proj)
            shard = shard_of(vid, shards)
            write_video_caches(video, vid, shard, data_root, tuple(dims), raw=raw)
            entries.append(VideoEntry(id=vid, source=f"{vid}.mp4", source_id=vid, content_hash=vid,
                                      fps=FPS, n_frames=n, duration=n / FPS, has_audio=True,
                                      partition=part, shard=shard))
            if part != "test":
                lab = {"valence": video.valence.copy(), "arousal": video.arousal.copy()}
                if unlabeled_fraction > 0:
                    start = int(rng.integers(0, n))
                    gap = int(unlabeled_fraction * n)
                    for arr in lab.values():
                        arr[start:start + gap] = np.nan
                labels[vid] = lab
            ids[part].append(vid)
    write_shards(entries, shards, data_root)
    write_labels(layout.labels_file(data_root), labels)
    write_json(layout.folds_file(data_root),
               {"folds": [{"train": ids.get("train", []), "validation": ids.get("validation", [])}],
                "test": ids.get("test", [])})
    return ids
