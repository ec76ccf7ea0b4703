"""Word timestamps from speech: the ASR engines behind one interface, and Vosk (the paper's ASR).

:func:`load_recognizer` loads the engine ``asr.engine`` names — ``vosk`` (below) or ``whisper``
(faster-whisper, pipeline/text/whisper.py: English offline by default) — as a :class:`Recognizer`:
words of a wav's samples, plus the source, settings and library versions every transcript records
(the skip-if-current key). Both engines give the same :class:`~pipeline.text.transcripts.Word`
format: lower-case words without punctuation, start/end seconds, a confidence.

Vosk:

The recognizer gets the audio in chunks of ``asr.chunk_seconds``; every utterance Vosk finalises
on the way (``AcceptWaveform`` → ``Result()``) is kept and ``FinalResult()`` collects the rest at
the end (the official code passes the whole file in one call and never asks for the final result,
which is how its users got empty transcripts). Words carry start/end in seconds from the start of
the file and Vosk's confidence.

Model (``asr.model``): a Vosk model directory, or a Vosk model name (e.g.
``vosk-model-en-us-0.22``, the paper's) that Vosk finds in its own folders (``~/.cache/vosk``,
``VOSK_MODEL_PATH``) or downloads on a machine with internet. Offline without it, the error says
which model, where to get it and which param to set.

Reproducibility: Kaldi dithers the features with numbers drawn from libc's ``rand()``, so the same
audio decoded twice in one process can give different words on unclear speech, and a video's
transcript would depend on which videos were decoded before it. :func:`transcribe` reseeds
``rand()`` before each file (:data:`DITHER_SEED`), which makes each video's result a function of
its own audio.
"""

from __future__ import annotations

import ctypes
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.assets import ASSETS, Asset, missing
from pipeline.core.params import AsrParams
from pipeline.text.transcripts import Word

log = logging.getLogger(__name__)

DITHER_SEED = 1  # libc rand() seed set before each file (see the module doc)
VOSK_MODELS_URL = "https://alphacephei.com/vosk/models"
MODEL_MARKERS = ("am/final.mdl", "final.mdl")  # a Vosk model directory has one of these


@dataclass
class VoskModel:
    """A loaded Vosk model and the name it is recorded under (``source`` = ``vosk:<name>``)."""

    model: object  # vosk.Model
    name: str

    @property
    def source(self) -> str:
        return f"vosk:{self.name}"


def vosk_asset(value: str) -> Asset:
    """The asset description for a Vosk model name or path (for error messages)."""
    name = Path(value).name or value
    if name in ASSETS:
        return ASSETS[name]
    if _looks_like_path(value) or not name.startswith("vosk-model"):  # a local folder of any name
        return Asset(f"Vosk model {name}", "a Vosk model (e.g. vosk-model-en-us-0.22)",
                     VOSK_MODELS_URL, "asr.model")
    return Asset(f"Vosk model {name}", name, f"{VOSK_MODELS_URL} ({name}.zip)", "asr.model")


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.startswith((".", "~"))


def vosk_version() -> str:
    from importlib.metadata import version

    return version("vosk")


def load_vosk(value: str) -> VoskModel:
    """Load the Vosk model named by ``asr.model``: a model directory or a Vosk model name."""
    import vosk

    vosk.SetLogLevel(-1)  # Kaldi's own logging goes to stderr otherwise
    if not value:
        raise missing(vosk_asset("vosk-model-small-en-us-0.15"), "asr.model = ''", "no model set")
    asset = vosk_asset(value)
    path = Path(value).expanduser()
    if path.exists() or _looks_like_path(value):
        if not path.is_dir():
            raise missing(asset, str(path), "no such directory" if not path.exists()
                          else "expected a model directory")
        if not any((path / m).is_file() for m in MODEL_MARKERS):
            raise missing(asset, str(path), "not a Vosk model directory (no am/final.mdl)")
        try:
            model = vosk.Model(model_path=str(path))
        except Exception as e:
            raise missing(asset, str(path), f"Vosk could not load it ({e})") from None
        return VoskModel(model, path.name)
    try:  # Vosk's own folders (~/.cache/vosk, VOSK_MODEL_PATH), or its download with internet
        found = find_vosk_model(value)
    except (Exception, SystemExit) as e:  # vosk calls sys.exit() for unknown names
        text = " ".join(str(e).split())
        offline = any(k in text for k in ("NameResolution", "Connection", "Max retries", "timed out"))
        why = "no network" if offline else f"unknown name? {text[:120] or type(e).__name__}"
        raise missing(asset, f"Vosk's download of {value!r}", why) from None
    try:
        model = vosk.Model(model_path=str(found))
    except Exception as e:
        raise missing(asset, str(found), f"Vosk could not load it ({e})") from None
    return VoskModel(model, value)


def find_vosk_model(name: str) -> Path:
    """The directory of Vosk model ``name``: Vosk's own lookup in its folders, or its download.

    Vosk only offers this inside ``Model()``, whose ``__del__`` complains when the lookup fails;
    a subclass that creates no model borrows the lookup alone.
    """
    import vosk

    class _Finder(vosk.Model):
        def __init__(self) -> None:
            pass

        def __del__(self) -> None:
            pass

    return Path(_Finder().get_model_by_name(name))


def reseed_dither(seed: int = DITHER_SEED) -> None:
    """Reseed libc ``rand()``, which Kaldi's feature dithering draws from (see the module doc)."""
    try:
        ctypes.CDLL(None).srand(seed)
    except (OSError, AttributeError):  # no libc symbol table (e.g. Windows): results may vary
        log.debug("cannot reseed libc rand(); Vosk results may vary between runs")


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """``[n]`` float samples in [-1, 1] → ``[n]`` int16 (clipped)."""
    return np.clip(np.round(np.asarray(samples, np.float32) * 32768.0), -32768, 32767).astype(np.int16)


def _words(result_json: str) -> list[dict]:
    return json.loads(result_json).get("result", [])


def transcribe(vosk_model: VoskModel, samples: np.ndarray, sample_rate: int,
               chunk_seconds: float) -> tuple[Word, ...]:
    """Words of ``samples`` (``[n]`` float32 mono in [-1, 1]) in time order, times in seconds.

    Audio is fed in chunks of ``chunk_seconds``; every accepted ``Result()`` is kept and
    ``FinalResult()`` collected at the end. Times are clipped to the audio's duration.
    """
    import vosk

    if chunk_seconds <= 0:
        raise ValueError(f"asr.chunk_seconds must be > 0, got {chunk_seconds}")
    samples = np.asarray(samples, np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    pcm = to_pcm16(samples)
    duration = len(pcm) / sample_rate
    chunk = max(1, int(round(chunk_seconds * sample_rate)))
    reseed_dither()
    rec = vosk.KaldiRecognizer(vosk_model.model, float(sample_rate))
    rec.SetWords(True)
    raw: list[dict] = []
    for i in range(0, len(pcm), chunk):
        if rec.AcceptWaveform(pcm[i:i + chunk].tobytes()):
            raw.extend(_words(rec.Result()))
    raw.extend(_words(rec.FinalResult()))
    words = []
    for w in raw:
        text = " ".join(str(w.get("word", "")).split())
        if not text:
            continue
        start = min(max(float(w["start"]), 0.0), duration)
        end = min(max(float(w["end"]), start), duration)
        words.append(Word(text, start, end, float(w.get("conf", 1.0))))
    return tuple(sorted(words, key=lambda w: w.start))



# --- one interface for the engines ------------------------------------------------------------

RECOGNIZERS = ("vosk", "whisper")  # the asr.engine values that run speech recognition


@dataclass
class Recognizer:
    """A loaded ASR engine: ``words(samples [n] float32, sample_rate)`` → words in time order, and
    what each transcript it makes records (``source``, ``settings``, ``versions``)."""

    engine: str
    source: str  # engine:model
    settings: dict  # what shapes the words
    versions: dict  # library versions that shape the words
    words: Callable[[np.ndarray, int], tuple[Word, ...]]


def load_recognizer(asr: AsrParams, engine: str | None = None) -> Recognizer:
    """Load the ASR engine ``engine`` (default ``asr.engine``) with its model from ``asr``.

    A model that is not available raises :class:`~pipeline.core.assets.AssetError` naming what was
    tried, where to get it and the param to set.
    """
    engine = engine or asr.engine
    if engine == "vosk":
        model = load_vosk(asr.model)
        settings = {"engine": "vosk", "model": model.name, "chunk_seconds": asr.chunk_seconds,
                    "dither_seed": DITHER_SEED}
        return Recognizer("vosk", model.source, settings, {"vosk": vosk_version()},
                          lambda x, sr: transcribe(model, x, sr, asr.chunk_seconds))
    if engine == "whisper":
        from pipeline.text import whisper

        wm = whisper.load_whisper(asr.whisper_model, asr.device, asr.whisper_compute, asr.threads)
        settings = {"engine": "whisper", "model": wm.name, "compute_type": wm.compute_type,
                    "beam_size": asr.whisper_beam, "language": asr.whisper_language}
        return Recognizer("whisper", wm.source, settings, whisper.versions(),
                          lambda x, sr: whisper.transcribe(wm, x, sr, asr.whisper_language,
                                                           asr.whisper_beam))
    raise ValueError(f"asr engine {engine!r} does not recognize speech; expected one of {RECOGNIZERS}")
