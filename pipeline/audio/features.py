"""Audio features: the VGGish log-mel front end, stored once per video, and per-frame features.

The front end is torchvggish's own (``mel_features.log_mel_spectrogram`` with ``vggish_params``):
25 ms periodic Hann window, 10 ms hop, 512-point FFT magnitude, 64 HTK mel bands 125-7500 Hz,
log(x + 0.01). It is computed ONCE per video at 10 ms resolution (``logmel``, ``[n_rows, 64]``
float32) instead of once per video frame: video frame i's 0.96 s patch (96 rows, starting at
i / fps, the paper's hop of 1 / fps) is cut at read time by :mod:`pipeline.audio.patches`.

As in the official pipeline, the audio is edge-padded by 1 s at the end before the front end, and
a patch that still runs past the last row repeats the last row (edge padding).

Per-frame features (``frame_dataset`` attr names the one the trainer reads):

- ``vggish`` ``[n_frames, 128]`` float32: VGGish embeddings of each frame's patch (no PCA), when
  ``audio.vggish_weights`` is configured (see :mod:`pipeline.audio.vggish`), on ``audio.device``
  (auto: CUDA when available) at ``audio.precision`` in batches of ``audio.batch_size`` patches
  (cut ahead in a background thread), with ``audio.threads`` torch threads on a CPU (0 = every core);
- ``logmel_mean`` ``[n_frames, 64]`` float32 otherwise: the mean log-mel spectrum over each frame's
  0.96 s patch (computed with cumulative sums), so that a fresh machine runs end to end.

Audio that is missing (no audio track) or silent gives defined features (the log-mel of digital
silence), never a crash: ``audio_status`` in the attrs says which (``none`` | ``silent``), the
audio_features stage counts it (:data:`CONDITIONS`), and ``rjcma predict`` notes it; the per-video
line is a debug message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torchvggish
from torchvggish import mel_features, vggish_params

from pipeline.audio.patches import N_MELS, PATCH_ROWS, SILENCE, patch, patch_starts, patches  # noqa: F401
from pipeline.core.cache import CacheKey
from pipeline.core.params import AudioParams, to_dict

log = logging.getLogger(__name__)

FEATURE_VERSION = 1  # bump when the code changes what is stored (invalidates caches)
HOP_SECONDS = vggish_params.STFT_HOP_LENGTH_SECONDS  # 0.010
WINDOW_SECONDS = vggish_params.STFT_WINDOW_LENGTH_SECONDS  # 0.025
PAD_SECONDS = 1.0  # the official pipeline edge-pads the audio by 1 s at the end
BLOCK_ROWS = 6000  # log-mel rows computed at once (60 s): bounds memory on long videos
SILENT_RMS = 1e-4  # audio with a lower RMS (full scale = 1) is reported as silent
RUNTIME_KEYS = ("batch_size", "device", "threads")  # where/how fast VGGish runs, not what
CONDITIONS = {"silent": ("silent audio",), "none": ("no audio",)}  # audio_status -> stage conditions


def hop_samples(sample_rate: int) -> int:
    return int(round(sample_rate * HOP_SECONDS))


def window_samples(sample_rate: int) -> int:
    return int(round(sample_rate * WINDOW_SECONDS))


def rows_per_second(sample_rate: int) -> float:
    """Log-mel rows per second of audio (100 at 16 kHz)."""
    return sample_rate / hop_samples(sample_rate)


def log_mel(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The VGGish log-mel spectrogram of a whole mono signal, edge-padded by ``PAD_SECONDS``.

    samples: ``[n_samples]`` (float, full scale 1). Returns ``[n_rows, 64]`` float32 with
    ``n_rows = 1 + (n_samples + pad - window) // hop``; row r covers samples
    ``[r * hop, r * hop + window)``, so rows over the original audio equal torchvggish's
    ``waveform_to_examples`` rows exactly. Computed in blocks of ``BLOCK_ROWS`` rows.
    """
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    pad = int(round(PAD_SECONDS * sample_rate))
    if samples.size:
        samples = np.pad(samples, (0, pad), mode="edge")
    else:
        samples = np.zeros(pad, np.float64)
    hop, win = hop_samples(sample_rate), window_samples(sample_rate)
    n_rows = 1 + (samples.size - win) // hop if samples.size >= win else 0
    out = np.empty((n_rows, N_MELS), np.float32)
    for r0 in range(0, n_rows, BLOCK_ROWS):
        r1 = min(n_rows, r0 + BLOCK_ROWS)
        block = samples[r0 * hop:(r1 - 1) * hop + win]
        out[r0:r1] = mel_features.log_mel_spectrogram(
            block, audio_sample_rate=sample_rate, log_offset=vggish_params.LOG_OFFSET,
            window_length_secs=WINDOW_SECONDS, hop_length_secs=HOP_SECONDS,
            num_mel_bins=N_MELS, lower_edge_hertz=vggish_params.MEL_MIN_HZ,
            upper_edge_hertz=vggish_params.MEL_MAX_HZ)
    return out


def frame_means(logmel: np.ndarray, n_frames: int, fps: float, rate: float = 100.0) -> np.ndarray:
    """Mean log-mel spectrum of each video frame's patch: ``[n_frames, 64]`` float32.

    Equal to ``patches(logmel, arange(n_frames), fps).mean(1)``, in O(n_rows + n_frames) memory
    through cumulative sums over the edge-padded rows.
    """
    starts = patch_starts(np.arange(n_frames), fps, rate)
    if n_frames == 0:
        return np.zeros((0, N_MELS), np.float32)
    if len(logmel) == 0:
        return np.full((n_frames, N_MELS), SILENCE, np.float32)
    need = int(starts.max()) + PATCH_ROWS
    rows = np.asarray(logmel, np.float64)
    if need > len(rows):
        rows = np.concatenate([rows, np.repeat(rows[-1:], need - len(rows), axis=0)])
    csum = np.concatenate([np.zeros((1, N_MELS)), np.cumsum(rows, axis=0)])  # [n_rows + 1, 64]
    return ((csum[starts + PATCH_ROWS] - csum[starts]) / PATCH_ROWS).astype(np.float32)


@dataclass
class AudioExtractor:
    """What shapes an audio cache: the params, the loaded VGGish model (or None), and the
    ``extractor`` / ``settings`` / ``versions`` recorded in the cache attrs."""

    params: AudioParams
    model: Any = None  # torchvggish VGG, or None for the compact log-mel features
    name: str = "logmel"
    settings: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)


def audio_cache_key(video_id: str, fps: float, n_frames: int, extractor: AudioExtractor,
                    source_hash: str) -> CacheKey:
    """The key of one video's audio cache (``source_hash``: the wav's bytes, or a no-audio tag)."""
    return CacheKey("audio", video_id, fps, n_frames, extractor.name, extractor.settings,
                    extractor.versions, source_hash)


def load_extractor(params: AudioParams) -> AudioExtractor:
    """Load VGGish once when ``params.vggish_weights`` is set; raises ``AssetError`` clearly."""
    versions = {"rjcma_audio": FEATURE_VERSION, "numpy": np.__version__,
                "torchvggish": _version("torchvggish")}
    settings = to_dict(params)
    for key in RUNTIME_KEYS:  # where and how fast VGGish runs does not change the content
        settings.pop(key)
    if not params.vggish_weights or params.precision == "fp32":
        del settings["precision"]  # recorded only when VGGish runs at other than fp32
    if not params.vggish_weights:
        del settings["vggish_relu"]  # a VGGish option: the log-mel features do not depend on it
        return AudioExtractor(params, None, "logmel", settings, versions)
    import torch

    from pipeline.audio.vggish import load_vggish
    from pipeline.core.device import place

    model, sha = load_vggish(params.vggish_weights, params.vggish_relu)
    model, _, _ = place(model, params.device, params.precision, params.threads, "audio.device")
    versions.update(torch=torch.__version__, vggish_sha256=sha)
    return AudioExtractor(params, model, "vggish", settings, versions)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return getattr(torchvggish, "__version__", "unknown")


def features_from_samples(samples: np.ndarray, sample_rate: int, fps: float, n_frames: int,
                          extractor: AudioExtractor, name: str = "") -> tuple[dict, dict]:
    """Audio cache content for one video from its mono samples.

    Returns ``(arrays, attrs)``: arrays ``logmel`` ``[n_rows, 64]`` float32 and the per-frame
    ``vggish`` ``[n_frames, 128]`` or ``logmel_mean`` ``[n_frames, 64]``; attrs ``frame_dataset``,
    ``sample_rate``, ``rows_per_second``, ``patch_rows``, ``audio_status`` (ok | silent | none).
    ``name`` labels warnings (the wav path or video id).
    """
    samples = np.asarray(samples, np.float32).reshape(-1)
    status = "ok"
    if samples.size == 0:
        status = "none"
        log.debug("%s: no audio samples; audio features are those of silence", name)
    elif float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENT_RMS:
        status = "silent"
        log.debug("%s: the audio is silent (RMS < %g)", name, SILENT_RMS)
    if sample_rate < 2 * vggish_params.MEL_MAX_HZ:
        raise ValueError(f"{name}: sample rate {sample_rate} Hz is too low for the VGGish front end "
                         f"(mel bands reach {vggish_params.MEL_MAX_HZ} Hz); set audio.sample_rate "
                         f"to {vggish_params.SAMPLE_RATE}")
    rate = rows_per_second(sample_rate)
    logmel = log_mel(samples, sample_rate)
    arrays: dict[str, np.ndarray] = {"logmel": logmel}
    if extractor.model is not None:
        from pipeline.audio.vggish import embed_patches

        starts = np.arange(n_frames)
        arrays["vggish"] = embed_patches(
            extractor.model, lambda idx: patches(logmel, starts[idx], fps, rate),
            n_frames, extractor.params.batch_size)
        frame_dataset = "vggish"
    else:
        arrays["logmel_mean"] = frame_means(logmel, n_frames, fps, rate)
        frame_dataset = "logmel_mean"
    attrs = {"frame_dataset": frame_dataset, "sample_rate": int(sample_rate),
             "rows_per_second": float(rate), "patch_rows": PATCH_ROWS,
             "pad_seconds": PAD_SECONDS, "audio_status": status}
    return arrays, attrs


def audio_features_for(wav_path: str | Path | None, fps: float, n_frames: int,
                       params: AudioParams, extractor: AudioExtractor | None = None,
                       ) -> tuple[dict, dict]:
    """Audio cache content of one video from its 16 kHz mono wav (``None`` = no audio track).

    The in-process entry point (``predict`` calls it without DVC); the stage calls it per video.
    Returns ``(arrays, attrs)`` as :func:`features_from_samples`.
    """
    extractor = extractor or load_extractor(params)
    if wav_path is None:
        return features_from_samples(np.zeros(0, np.float32), params.sample_rate, fps, n_frames,
                                     extractor, "no audio track")
    from pipeline.core.media import read_wav

    samples, sr = read_wav(wav_path)
    samples = np.asarray(samples, np.float32)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return features_from_samples(samples, sr, fps, n_frames, extractor, str(wav_path))
