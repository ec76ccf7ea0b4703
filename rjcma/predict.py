"""Per-frame valence/arousal for any video file, in-process (no DVC, no manifest).

The same feature code as the DVC stages runs on one video — audio extraction, log-mel/VGGish,
faces (crops, whole frames or detection) and embeddings, words (a given transcript, or the
checkpoints' ASR engine: Vosk or Whisper; Whisper tiny.en offline when they were trained on
given transcripts) → punctuation → BERT — using the feature params stored in the trained
checkpoints, so features are computed exactly as in training. Every checkpoint of a finished run
under ``--model`` predicts over windows with stitching; checkpoints of the same target (e.g.
several folds) are averaged.

Where it runs is predict's own choice (``device``: ``--device``, default ``auto`` = CUDA when
available, else the CPU), never the devices the checkpoints recorded: a model trained or fine-tuned
on ``cuda:1`` records ``visual.device`` / ``audio.device`` / ``asr.device`` / ``train.device`` =
``cuda:1``, and :func:`on_device` replaces them so that it predicts on a CPU-only machine.

A fine-tuned model (``train.backbones: finetune``) carries its IR-50 / VGGish weights: predict then
extracts the backbone inputs instead of embeddings (faces ``[T, S, S, 3]`` uint8 + ``face_present``,
the log-mel rows, read by fusion.data exactly as in training) and needs no weights file.

Whatever can be predicted still is: a video without an audio track gets silent-audio features,
frames without a face get black faces (both flagged), and a text chain that cannot run (no ASR
model offline) falls back to all-zero text features — each with a warning and a line in the
summary. An unreadable video is an error naming the file.
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fusion.checkpoint import load_checkpoint
from fusion.data import ArrayVideo, MemoryCache
from fusion.evaluate import model_inputs, predict_video
from pipeline.core import layout
from pipeline.core.assets import AssetError
from pipeline.core.atomic import atomic_path, write_text
from pipeline.core.frames import frame_features
from pipeline.core.params import Params, ParamsError, params_from_dict

IN_PROCESS = "predict"  # source hash of predict's temporary caches (never checked for currency)
FEATURE_SECTIONS = ("audio", "visual", "asr", "punctuation", "text")

log = logging.getLogger("rjcma.predict")


@dataclass
class Prediction:
    """Per-frame outputs of one video."""

    video: str
    fps: float
    values: dict[str, np.ndarray]  # target -> [T] in [-1, 1]
    face_present: np.ndarray  # [T] bool
    notes: list[str] = field(default_factory=list)  # what was degraded and why

    @property
    def n_frames(self) -> int:
        return int(self.face_present.shape[0])


def find_checkpoints(model_dir: str | Path) -> list[Path]:
    """Checkpoints of the finished runs under ``model_dir``: a run dir (``checkpoint.pt``), or any
    dir holding runs. Hidden folders (a run still being written, ``.tmp-*``) are never taken."""
    model_dir = Path(model_dir)
    if model_dir.is_file():
        return [model_dir]
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory (a results/train/<run> dir)")
    if model_dir.resolve().name.startswith("."):
        raise FileNotFoundError(f"{model_dir}: a run still being written (or left by a crash), "
                                "not a finished run")
    found, unfinished = [], []
    for path in sorted(model_dir.rglob(layout.CHECKPOINT)):
        hidden = any(part.startswith(".") for part in path.relative_to(model_dir).parts[:-1])
        (unfinished if hidden else found).append(path)
    if unfinished:
        log.info("skipped %d unfinished run(s) (still being written): %s", len(unfinished),
                 ", ".join(str(p.parent.relative_to(model_dir)) for p in unfinished))
    if not found:
        raise FileNotFoundError(f"{model_dir}: no {layout.CHECKPOINT} of a finished run below it "
                                "(train first: `dvc repro` or `python -m stages.train`)")
    return found


def feature_params(checkpoints: Sequence[dict]) -> Params:
    """The params the checkpoints' features were computed with; they must agree."""
    first = checkpoints[0]["params"]
    for ck in checkpoints[1:]:
        for s in FEATURE_SECTIONS:
            if ck["params"].get(s) != first.get(s):
                raise ValueError(f"checkpoints disagree on the `{s}` feature params; "
                                 "pass a --model directory of runs trained on the same features")
    return params_from_dict(first, "checkpoint params")


def on_device(params: Params, device: str) -> Params:
    """``params`` with the feature backbones (VGGish, IR-50, Whisper) on ``device`` instead of the
    devices recorded at training time. Whisper (CTranslate2) takes only cpu / cuda / cuda:N:
    another torch device (mps) leaves it on ``auto``."""
    try:
        asr = replace(params.asr, device=device)
    except ParamsError:  # AsrParams: auto | cpu | cuda | cuda:N
        asr = replace(params.asr, device="auto")
    return replace(params, audio=replace(params.audio, device=device),
                   visual=replace(params.visual, device=device), asr=asr,
                   train=replace(params.train, device=device))


@dataclass
class FeatureModels:
    """The feature extractors of one set of params, loaded on first use and kept for every video.
    ``backbones``: modalities whose backbone runs inside the model (no embedding extractor loaded)."""

    params: Params
    backbones: tuple[str, ...] = ()
    _audio: object = None
    _visual: object = None
    _text: object = None

    def audio(self):
        if self._audio is None:
            from pipeline.audio.features import AudioExtractor, load_extractor

            self._audio = (AudioExtractor(self.params.audio) if "audio" in self.backbones
                           else load_extractor(self.params.audio))
        return self._audio

    def visual(self):
        if self._visual is None:
            from pipeline.visual.features import VisualBackbone, load_backbone

            self._visual = (VisualBackbone("none", 0, lambda f, p: np.zeros((len(f), 0), np.float32))
                            if "visual" in self.backbones else load_backbone(self.params.visual))
        return self._visual

    def text(self):
        if self._text is None:
            from pipeline.text.features import TextChain

            self._text = TextChain(self.params)  # loads ASR / punctuation / BERT once, lazily
        return self._text


def _text_features(models: FeatureModels, video_id: str, fps: float, n_frames: int,
                   wav: Path | None, transcript: str | Path | None, tmp: Path,
                   notes: list[str]) -> Path | None:
    path = tmp / "text.h5"
    if transcript is not None:  # the user named it: a bad transcript is an error, never zeros
        models.text().write(path, video_id, fps, n_frames, transcript_file=transcript)
        return path
    try:
        models.text().write(path, video_id, fps, n_frames, wav=wav)
        return path
    except AssetError as e:  # no ASR model (offline): predict without words
        notes.append(f"text: zeros (no ASR model: pass --transcript, or see docs/models.md; {e})")
        log.warning("%s: no ASR model, text features are zeros (pass --transcript FILE)", video_id)
        return None


def extract_features(video: str | Path, params: Params, modalities: Sequence[str],
                     transcript: str | Path | None = None, crops_dir: str | Path | None = None,
                     models: FeatureModels | None = None,
                     ) -> tuple[dict[str, np.ndarray], np.ndarray, float, list[str]]:
    """Per-frame features ``{modality: [T, D_m]}`` of one video with the stages' own code.

    Returns ``(features, face_present [T], fps, notes)``. A modality whose features could not be
    computed (no ASR model) is missing from ``features``; the caller fills in zeros. ``models``:
    extractors shared across videos (loaded here when not given); for its ``backbones``
    modalities ``features`` holds their cache content instead (a :class:`fusion.data.MemoryCache`
    of ``faces`` + ``face_present`` / ``logmel``), which the fine-tuned model reads as in training.
    """
    models = models or FeatureModels(params)
    from pipeline.audio.features import audio_cache_key, audio_features_for
    from pipeline.core.cache import write_cache
    from pipeline.core.media import extract_wav, probe
    from pipeline.visual.faces import resolve_source
    from pipeline.visual.features import visual_cache_key, visual_features_for

    video = Path(video)
    info = probe(video)  # MediaError naming the file when unreadable
    vid = video.stem
    notes: list[str] = []
    feats: dict[str, np.ndarray] = {}
    present = np.zeros(info.n_frames, bool)
    steps = tqdm(total=len(modalities), desc=f"features {vid}", unit="modality", disable=None)
    with tempfile.TemporaryDirectory(prefix="rjcma-predict-") as tmpdir:
        tmp = Path(tmpdir)
        wav = None
        if info.has_audio:
            wav = extract_wav(video, tmp / "audio.wav", params.audio.sample_rate, info=info)
        elif "audio" in modalities or "text" in modalities:
            notes.append("audio: no audio track (silent-audio features, no words)")
            log.warning("%s: no audio track; audio features of silence, no words", video)
        if "audio" in modalities:
            extractor = models.audio()
            arrays, attrs = audio_features_for(wav, info.fps, info.n_frames, params.audio, extractor)
            if wav is not None and attrs["audio_status"] != "ok":
                notes.append("audio: silent (features of silence)")
            if "audio" in models.backbones:
                feats["audio"] = MemoryCache({"logmel": arrays["logmel"]},
                                             {**attrs, "modality": "audio", "fps": info.fps,
                                              "n_frames": info.n_frames})
            else:
                key = audio_cache_key(vid, info.fps, info.n_frames, extractor, IN_PROCESS)
                p = write_cache(tmp / "audio.h5", arrays, key, attrs=attrs)
                feats["audio"] = frame_features(p)
            steps.update()
        if "visual" in modalities:
            vparams = params.visual
            if crops_dir is None and vparams.face_source == "crops":
                vparams = replace(vparams, face_source="detect")
            source = resolve_source(vparams.face_source, crops_dir)  # settled once for this video
            backbone = models.visual()
            arrays, attrs = visual_features_for(video, info.n_frames, vparams, crops_dir, backbone,
                                                source)
            present = arrays["face_present"]
            if "visual" in models.backbones:
                feats["visual"] = MemoryCache({k: arrays[k] for k in ("faces", "face_present")},
                                              {"modality": "visual", "fps": info.fps,
                                               "n_frames": info.n_frames})
            else:
                key = visual_cache_key(vid, info.fps, info.n_frames, vparams, source, backbone,
                                       IN_PROCESS)
                p = write_cache(tmp / "visual.h5", arrays, key, attrs=attrs)
                feats["visual"] = frame_features(p)
            if not present.any():
                notes.append("visual: no face found in any frame (black faces)")
            steps.update()
        if "text" in modalities:
            if wav is None and transcript is None:
                notes.append("text: zeros (no audio track and no transcript)")
            else:
                p = _text_features(models, vid, info.fps, info.n_frames, wav, transcript, tmp, notes)
                if p is not None:
                    feats["text"] = frame_features(p)
            steps.update()
    steps.close()
    return feats, present, info.fps, notes


class Predictor:
    """Every checkpoint under ``model_dir`` and the feature extractors, loaded once for many videos."""

    def __init__(self, model_dir: str | Path, device: str = "auto", face_source: str | None = None):
        from pipeline.core.device import resolve_device

        self.device = str(resolve_device(device, "--device"))  # auto -> cuda | cpu; never the recorded one
        self.paths = find_checkpoints(model_dir)
        self.loaded = [load_checkpoint(p, self.device) for p in self.paths]
        log.info("%d checkpoint(s): %s", len(self.paths),
                 ", ".join(str(p.parent.name) for p in self.paths))
        params = on_device(feature_params([ck for _, ck in self.loaded]), self.device)
        if face_source:
            params = replace(params, visual=replace(params.visual, face_source=face_source))
        self.params = params
        self.modalities = sorted({m for model, _ in self.loaded for m in model.modalities})
        kinds = {tuple(m for m, k in model_inputs(model).items() if k != "embedding")
                 for model, _ in self.loaded}
        if len(kinds) > 1:
            raise ValueError(f"{model_dir}: mixes fine-tuned and frozen-feature checkpoints "
                             f"(backbones {sorted(kinds)}); pass one kind per --model")
        self.models = FeatureModels(params, kinds.pop())

    def __call__(self, video: str | Path, transcript: str | Path | None = None,
                 crops_dir: str | Path | None = None) -> Prediction:
        """Per-frame targets of ``video``; checkpoints of one target are averaged."""
        if crops_dir is not None and not any(Path(crops_dir).glob("*.jpg")):
            raise FileNotFoundError(f"{crops_dir}: no face crops (00001.jpg ...) in this folder")
        feats, present, fps, notes = extract_features(video, self.params, self.modalities,
                                                      transcript, crops_dir, self.models)
        n_frames = present.shape[0]
        sums: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        for (model, ck), path in tqdm(list(zip(self.loaded, self.paths)), desc="models",
                                      unit="model", disable=None):
            inputs = {}
            for m in model.modalities:
                if m in self.models.backbones:  # cache content for the model's own backbone
                    continue
                dim = model.config_dict()["input_dims"][m]
                inputs[m] = feats.get(m, np.zeros((n_frames, dim), np.float32))
                if inputs[m].shape[1] != dim:
                    raise ValueError(f"{path}: trained on {dim}-d {m} features, the video gives "
                                     f"{inputs[m].shape[1]}-d (different feature params?)")
            if self.models.backbones:  # faces / log-mel caches in memory, read as in training
                caches = {m: feats[m] for m in self.models.backbones if m in model.modalities}
                if inputs:
                    caches.update(ArrayVideo.from_frames(inputs).caches)
                video_in = ArrayVideo(Path(video).stem, n_frames, caches)
            else:
                video_in = inputs
            out = predict_video(model, video_in, ck["window"], ck["stride"])  # [T, n_targets]
            for j, target in enumerate(ck["targets"]):
                sums[target] = sums.get(target, 0) + out[:, j]
                counts[target] = counts.get(target, 0) + 1
        values = {t: (sums[t] / counts[t]).astype(np.float32) for t in sorted(sums)}
        return Prediction(str(video), fps, values, present, notes)


def predict(video: str | Path, model_dir: str | Path, transcript: str | Path | None = None,
            crops_dir: str | Path | None = None, face_source: str | None = None,
            device: str = "auto") -> Prediction:
    """Predict per-frame targets of one ``video`` with every checkpoint under ``model_dir``."""
    return Predictor(model_dir, device, face_source)(video, transcript, crops_dir)


def to_csv(pred: Prediction) -> str:
    """``frame,time,<targets...>,face`` with one row per video frame."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    targets = list(pred.values)
    w.writerow(["frame", "time", *targets, "face"])
    for i in range(pred.n_frames):
        w.writerow([i, f"{i / pred.fps:.3f}", *(f"{pred.values[t][i]:.6f}" for t in targets),
                    int(pred.face_present[i])])
    return buf.getvalue()


def plot(pred: Prediction, path: str | Path) -> Path:
    """A PNG of the predicted curves over time (shaded where no face was found)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(pred.n_frames) / pred.fps
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for target, v in pred.values.items():
        ax.plot(t, v, label=target, lw=1.2)
    if (~pred.face_present).any():
        ax.fill_between(t, -1, 1, where=~pred.face_present, color="0.85", step="mid", label="no face")
    ax.set(ylim=(-1.05, 1.05), xlabel="time (s)", ylabel="prediction", title=Path(pred.video).name)
    ax.axhline(0, color="0.6", lw=0.5)
    ax.legend(loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def write_outputs(pred: Prediction, out_dir: str | Path) -> tuple[Path, Path]:
    """``<out>/<video>.csv`` and ``<out>/<video>.png``."""
    out_dir = Path(out_dir)
    stem = Path(pred.video).stem
    csv_path = out_dir / f"{stem}.csv"
    write_text(csv_path, to_csv(pred))
    return csv_path, plot(pred, out_dir / f"{stem}.png")
