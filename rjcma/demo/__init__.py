"""The built-in demo dataset: synthetic talking faces in the Aff-Wild2 layout, made reproducibly.

Every annotated person has smooth random valence and arousal trajectories (one value per frame,
in [-1, 1], drawn independently of each other) that drive all three modalities:

- face:  mouth curvature <-> valence; eye opening, brow height and head jitter <-> arousal; the
  mouth opens with the person's own speech envelope;
- voice: real espeak-ng speech whose pitch, rate and loudness rise with arousal (set per word);
- words: sentences whose words come from lists graded from very negative to very positive,
  picked by the speaker's valence when the sentence starts.

Layout written under ``--out`` (docs/demo.md has the full description)::

    videos/<source>.mp4                   H.264 + AAC (16 kHz mono), FPS frames/s
    cropped_aligned/<id>/00001.jpg ...    CROP_SIZE x CROP_SIZE face crops, 1-based frame numbers;
                                          a missing file = no face in that frame
    annotations/Train_Set/<id>.txt        header "valence,arousal", one row per frame, -5 = unlabeled
    annotations/Validation_Set/<id>.txt
    transcripts/<source>.json             [{"word", "start", "end"}], seconds, one per video file
    demo.json                             settings, tool versions and a summary of every video

The two-person video ``<source>.mp4`` holds ``<source>_left`` and ``<source>_right`` side by side
(separate crops and annotations; they take turns speaking). The last two videos have no
annotation (the test partition); a few videos have no crops (the pipeline uses whole frames or
detection there).

The same seed and settings give byte-identical files with the same espeak-ng, ffmpeg and OpenCV
builds (single-threaded bit-exact encoders, no timestamps or metadata). Run::

    python -m rjcma.demo --out data/demo --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

log = logging.getLogger("rjcma.demo")

# ---- dataset shape (defaults of the committed demo) ----
N_VIDEOS = 15  # video files; one holds two people, so 16 annotated/test persons
SECONDS = 18.0  # mean video duration; each video is 0.75-1.25 x this, whole frames
FPS = 10
FRAME_SIZE = 96  # pixels, the square canvas of one person; the two-person video is 2x wide
CROP_SIZE = 48  # cropped_aligned image side
JPEG_QUALITY = 75
N_TEST = 2  # last videos: no annotation
VALIDATION_FRACTION = 0.3  # of the annotated single-person videos
DURATION_JITTER = 0.25

# ---- trajectories ----
N_WAVES = 4  # sinusoids summed per trajectory
PERIOD_RANGE = (3.0, 12.0)  # seconds
SPAN_RANGE = (0.45, 0.85)  # half-range of a trajectory around its centre
CENTER_RANGE = (-0.3, 0.3)
CLIP = 0.95
MAX_VA_CORRELATION = 0.3  # |corr(valence, arousal)| per person; redrawn until below
MAX_REDRAWS = 50
LABEL_DECIMALS = 3
UNLABELED = -5
UNLABELED_STRETCHES = (0, 2)  # per annotated person, inclusive
UNLABELED_LENGTH = (5, 20)  # frames
OCCLUSION_STRETCHES = (1, 2)  # per person: a hand over the face, no crop written
OCCLUSION_LENGTH = (3, 8)  # frames

# ---- speech ----
ESPEAK = "espeak-ng"
VOICES = ("en-us+m3", "en-us+f2", "en-us+m1", "en-us+f4", "en-us+m7", "en-us+f1")
SPEECH_RATE = 22050  # espeak-ng's output rate; ffmpeg resamples to AUDIO_RATE
AUDIO_RATE = 16000
AUDIO_BITRATE = "16k"
PITCH_RANGE = (15, 90)  # espeak-ng -p at arousal -1 .. +1
SPEED_RANGE = (130, 290)  # -s, words per minute
AMPLITUDE = 100  # espeak-ng -a; loudness is set by GAIN_DB instead (no clipping)
GAIN_DB = (-20.0, 0.0)  # speech gain at arousal -1 .. +1
PITCH_JITTER = 8  # per-voice offset of -p
WORD_GAP = (0.02, 0.06)  # seconds of silence between words
PAUSE_BASE = 0.1  # seconds between sentences, + PAUSE_CALM x (1 - arousal) / 2
PAUSE_CALM = 0.4
LEAD_IN = (0.1, 0.4)  # seconds of silence at the start
TRIM_LEVEL = 0.01  # of full scale: espeak-ng's leading/trailing silence is cut below it
ENVELOPE_REF = 0.1  # RMS (full scale = 1) that opens the mouth fully

# words graded by valence: level = round((valence + 1) * 2), 0 = very negative .. 4 = very positive
WORDS = (
    ("terrible", "awful", "horrible", "miserable", "dreadful", "furious", "tragic", "painful",
     "disgusting", "hopeless", "hateful", "disastrous"),
    ("sad", "tired", "bad", "worried", "boring", "lonely", "upset", "gloomy", "annoyed", "sorry",
     "difficult", "unhappy"),
    ("normal", "usual", "ordinary", "plain", "average", "regular", "okay", "standard", "typical",
     "moderate", "common", "routine"),
    ("good", "nice", "pleasant", "calm", "friendly", "glad", "fine", "sunny", "kind", "warm",
     "happy", "cheerful"),
    ("wonderful", "amazing", "fantastic", "lovely", "delighted", "brilliant", "excellent",
     "joyful", "perfect", "thrilled", "marvelous", "beautiful"),
)
TEMPLATES = (  # {} = a word of the sentence's valence level
    "i feel {} and {}",
    "this is {}",
    "everything seems {} today",
    "it was {} and {} again",
    "what a {} {} day",
    "the news is {}",
    "we are {} about it",
    "such a {} time",
)

# ---- face drawing (units of the face's half-height R, image y grows downwards) ----
FACE_RADIUS = 0.34  # R as a fraction of FRAME_SIZE
FACE_WIDTH = (0.76, 0.86)  # half-width / R, per identity
EYE_DX, EYE_Y, EYE_W = 0.36, -0.18, 0.17
EYE_H = (0.03, 0.17)  # half-height at arousal -1 .. +1
IRIS = 0.09  # iris radius
BROW_GAP = (0.16, 0.36)  # brow above eye centre at arousal -1 .. +1
BROW_W = 0.2
MOUTH_Y, MOUTH_W = 0.46, 0.4
MOUTH_LIFT = 0.24  # corner lift at valence +1 (negative valence pulls the corners down)
MOUTH_OPEN = 0.2  # lower-lip drop at full speech envelope
SWAY = 0.03  # slow head drift, fraction of FRAME_SIZE
SWAY_PERIODS = (7.0, 5.0)  # seconds, x and y
JITTER = (0.0, 0.05)  # per-frame head jitter (std, fraction of FRAME_SIZE) at arousal -1 .. +1
BLINK_PROB = 0.02  # per frame
CROP_SCALE = 2.7  # crop side / R, centred on the head
EYE_WHITE, IRIS_COLOR = (245, 245, 245), (40, 30, 20)  # BGR
NOSE_COLOR, LIP_COLOR, MOUTH_INSIDE = (70, 90, 130), (50, 50, 150), (30, 20, 60)
HAND_EDGE = (60, 80, 110)
SKIN_BASE, SKIN_JITTER = (120, 160, 205), 30  # BGR; per identity
BACKGROUND_RANGE, HAIR_RANGE, SHIRT_RANGE = (60, 200), (10, 90), (40, 220)  # per BGR channel
VIDEO_CRF = 32


@dataclass(frozen=True)
class DemoConfig:
    """Everything that decides the generated bytes (with the tool versions)."""

    seed: int = 0
    videos: int = N_VIDEOS
    seconds: float = SECONDS
    fps: int = FPS
    frame_size: int = FRAME_SIZE
    crop_size: int = CROP_SIZE
    jpeg_quality: int = JPEG_QUALITY


@dataclass
class Person:
    """One annotated (or test) person of a video."""

    id: str
    voice: str
    pitch_offset: int
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    width: float
    valence: np.ndarray = field(repr=False)  # [n_frames] float, in [-1, 1]
    arousal: np.ndarray = field(repr=False)
    unlabeled: np.ndarray = field(repr=False)  # [n_frames] bool
    occluded: np.ndarray = field(repr=False)  # [n_frames] bool


@dataclass
class VideoPlan:
    source: str
    partition: str  # train | validation | test
    has_crops: bool
    n_frames: int
    background: tuple[int, int, int]
    persons: list[Person]


# ------------------------------------------------------------------------------------------------
# plan: ids, partitions, trajectories


def video_roles(n_videos: int) -> list[tuple[str, int, bool]]:
    """``(partition, n_persons, has_crops)`` per video file, in order.

    The last N_TEST videos (when there are at least 5) are the test partition, the last of them
    without crops; with at least 6 videos the last training video holds two people and, with at
    least 8, the first training video has no crops. The rest: VALIDATION_FRACTION validation.
    """
    if n_videos < 2:
        raise ValueError(f"need at least 2 videos (train + validation), got {n_videos}")
    n_test = N_TEST if n_videos >= 5 else 0
    n_labeled = n_videos - n_test
    n_val = max(1, round(n_labeled * VALIDATION_FRACTION))
    n_train = n_labeled - n_val
    roles = [("train", 1, True) for _ in range(n_train)]
    if n_videos >= 6:
        roles[-1] = ("train", 2, True)
    if n_videos >= 8:
        roles[0] = ("train", 1, False)
    roles += [("validation", 1, True) for _ in range(n_val)]
    roles += [("test", 1, i < n_test - 1) for i in range(n_test)]
    return roles


def trajectory(rng: np.random.Generator, n_frames: int, fps: float) -> np.ndarray:
    """A smooth random curve ``[n_frames]`` in [-CLIP, CLIP]: a normalised sum of sinusoids."""
    t = np.arange(n_frames) / fps
    periods = rng.uniform(*PERIOD_RANGE, N_WAVES)
    phases = rng.uniform(0, 2 * math.pi, N_WAVES)
    amps = rng.uniform(0.5, 1.0, N_WAVES)
    x = (amps[:, None] * np.sin(2 * math.pi * t[None] / periods[:, None] + phases[:, None])).sum(0)
    x = x - x.mean()
    x = x / (np.abs(x).max() + 1e-9)
    return np.clip(rng.uniform(*CENTER_RANGE) + rng.uniform(*SPAN_RANGE) * x, -CLIP, CLIP)


def independent_pair(rng: np.random.Generator, n_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Valence and arousal ``[n_frames]`` each, with |correlation| below MAX_VA_CORRELATION."""
    valence = trajectory(rng, n_frames, fps)
    best, best_r = None, 2.0
    for _ in range(MAX_REDRAWS):
        arousal = trajectory(rng, n_frames, fps)
        r = abs(float(np.corrcoef(valence, arousal)[0, 1]))
        if r < best_r:
            best, best_r = arousal, r
        if r < MAX_VA_CORRELATION:
            break
    return valence, best


def stretches(rng: np.random.Generator, n_frames: int, count: tuple[int, int],
              length: tuple[int, int]) -> np.ndarray:
    """A ``[n_frames]`` bool mask of a random number of random-length stretches."""
    mask = np.zeros(n_frames, bool)
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        n = int(rng.integers(length[0], length[1] + 1))
        if n >= n_frames:
            continue
        start = int(rng.integers(0, n_frames - n))
        mask[start:start + n] = True
    return mask


def plan_videos(cfg: DemoConfig) -> list[VideoPlan]:
    """Every video's ids, partition, length, look and trajectories, from the seed alone.

    Video k draws from its own generator ``(seed, k)``, so adding videos leaves earlier ones alone.
    """
    plans = []
    for k, (partition, n_persons, has_crops) in enumerate(video_roles(cfg.videos)):
        rng = np.random.default_rng([cfg.seed, k])
        source = f"demo{k + 1:02d}"
        seconds = cfg.seconds * rng.uniform(1 - DURATION_JITTER, 1 + DURATION_JITTER)
        n_frames = max(2, round(seconds * cfg.fps))
        background = tuple(int(c) for c in rng.integers(*BACKGROUND_RANGE, 3))
        ids = [source] if n_persons == 1 else [f"{source}_left", f"{source}_right"]
        persons = []
        for j, pid in enumerate(ids):
            valence, arousal = independent_pair(rng, n_frames, cfg.fps)
            skin = tuple(int(c) for c in np.array(SKIN_BASE) + rng.integers(-SKIN_JITTER, SKIN_JITTER + 1, 3))
            persons.append(Person(
                id=pid,
                voice=VOICES[(k + j) % len(VOICES)],
                pitch_offset=int(rng.integers(-PITCH_JITTER, PITCH_JITTER + 1)),
                skin=skin,
                hair=tuple(int(c) for c in rng.integers(*HAIR_RANGE, 3)),
                shirt=tuple(int(c) for c in rng.integers(*SHIRT_RANGE, 3)),
                width=float(rng.uniform(*FACE_WIDTH)),
                valence=valence,
                arousal=arousal,
                unlabeled=(stretches(rng, n_frames, UNLABELED_STRETCHES, UNLABELED_LENGTH)
                           if partition != "test" else np.zeros(n_frames, bool)),
                occluded=stretches(rng, n_frames, OCCLUSION_STRETCHES, OCCLUSION_LENGTH),
            ))
        plans.append(VideoPlan(source, partition, has_crops, n_frames, background, persons))
    return plans


# ------------------------------------------------------------------------------------------------
# speech


def unit(x: float) -> float:
    """[-1, 1] → [0, 1]."""
    return (float(np.clip(x, -1, 1)) + 1) / 2


def lerp(lo_hi: tuple[float, float], u: float) -> float:
    return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * u


def sentence(rng: np.random.Generator, valence: float) -> list[str]:
    """The words of one sentence whose wording follows ``valence``."""
    level = int(np.clip(round((valence + 1) * 2), 0, len(WORDS) - 1))
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    fill = [WORDS[level][int(i)] for i in rng.choice(len(WORDS[level]), template.count("{}"), replace=False)]
    return template.format(*fill).split()


def synthesize(word: str, voice: str, pitch: int, speed: int, tmp: Path) -> np.ndarray:
    """espeak-ng speech of one word, leading/trailing silence trimmed → ``[n]`` float32 at SPEECH_RATE."""
    path = tmp / "word.wav"
    cmd = [ESPEAK, "-v", voice, "-p", str(pitch), "-s", str(speed), "-a", str(AMPLITUDE),
           "-w", str(path), word]
    subprocess.run(cmd, check=True, capture_output=True)
    with wave.open(str(path)) as w:
        if w.getframerate() != SPEECH_RATE or w.getnchannels() != 1:
            raise RuntimeError(f"espeak-ng wrote {w.getframerate()} Hz x {w.getnchannels()}; "
                               f"expected {SPEECH_RATE} Hz mono")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    loud = np.flatnonzero(np.abs(x) > TRIM_LEVEL)
    return x[loud[0]:loud[-1] + 1] if loud.size else x[:0]


def speak(plan: VideoPlan, fps: float, rng: np.random.Generator, tmp: Path
          ) -> tuple[list[np.ndarray], list[dict]]:
    """Speech of the video's persons taking turns by sentence.

    Returns per person a ``[n_samples]`` float32 track at SPEECH_RATE (silent while the other
    speaks) and the word-level transcript ``[{"word", "start", "end"}]`` of the mix.
    """
    duration = plan.n_frames / fps
    n = int(round(duration * SPEECH_RATE))
    tracks = [np.zeros(n, np.float32) for _ in plan.persons]
    words = []
    t = rng.uniform(*LEAD_IN)
    for turn in range(10**6):
        who = turn % len(plan.persons)
        person = plan.persons[who]
        for text in sentence(rng, float(person.valence[min(int(t * fps), plan.n_frames - 1)])):
            u = unit(person.arousal[min(int(t * fps), plan.n_frames - 1)])
            x = synthesize(text, person.voice,
                           pitch=int(round(lerp(PITCH_RANGE, u))) + person.pitch_offset,
                           speed=int(round(lerp(SPEED_RANGE, u))), tmp=tmp)
            x = x * np.float32(10 ** (lerp(GAIN_DB, u) / 20))
            start = int(round(t * SPEECH_RATE))
            if start + x.size > n - 1:  # the video ends inside this word
                return tracks, words
            tracks[who][start:start + x.size] += x
            words.append({"word": text, "start": round(start / SPEECH_RATE, 3),
                          "end": round((start + x.size) / SPEECH_RATE, 3)})
            t = (start + x.size) / SPEECH_RATE + rng.uniform(*WORD_GAP)
        u = unit(person.arousal[min(int(t * fps), plan.n_frames - 1)])
        t += PAUSE_BASE + PAUSE_CALM * (1 - u) + rng.uniform(0, 0.1)
    return tracks, words


def envelope(track: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Per-frame mouth opening ``[n_frames]`` in [0, 1]: RMS of each frame's audio / ENVELOPE_REF."""
    hop = SPEECH_RATE / fps
    out = np.zeros(n_frames, np.float32)
    for i in range(n_frames):
        seg = track[int(i * hop):int((i + 1) * hop)]
        if seg.size:
            out[i] = min(1.0, float(np.sqrt(np.mean(seg ** 2))) / ENVELOPE_REF)
    return out


# ------------------------------------------------------------------------------------------------
# faces


@dataclass(frozen=True)
class Pose:
    """One person in one frame: where the head is and what the face does."""

    cx: float  # head centre, pixels in the person's canvas
    cy: float
    valence: float
    arousal: float
    mouth_open: float  # 0..1
    blink: bool
    occluded: bool


def poses(person: Person, mouth: np.ndarray, size: int, fps: float, rng: np.random.Generator) -> list[Pose]:
    """Per-frame poses ``[n_frames]``: slow sway plus arousal-scaled jitter, random blinks."""
    n = person.valence.size
    t = np.arange(n) / fps
    ph = rng.uniform(0, 2 * math.pi, 2)
    sway = SWAY * size * np.stack([np.sin(2 * math.pi * t / SWAY_PERIODS[0] + ph[0]),
                                   np.sin(2 * math.pi * t / SWAY_PERIODS[1] + ph[1])])
    jitter = rng.standard_normal((2, n)) * np.array([lerp(JITTER, unit(a)) for a in person.arousal]) * size
    blink = rng.random(n) < BLINK_PROB
    cx = size / 2 + sway[0] + jitter[0]
    cy = size / 2 + 0.04 * size + sway[1] + jitter[1]
    return [Pose(float(cx[i]), float(cy[i]), float(person.valence[i]), float(person.arousal[i]),
                 float(mouth[i]), bool(blink[i]), bool(person.occluded[i])) for i in range(n)]


def _pt(x: float, y: float) -> tuple[int, int]:
    """Sub-pixel point for OpenCV drawing with shift=SHIFT."""
    return int(round(x * (1 << SHIFT))), int(round(y * (1 << SHIFT)))


SHIFT = 4  # fractional bits of drawing coordinates


def draw_person(canvas: np.ndarray, person: Person, pose: Pose) -> None:
    """Draw one face on ``canvas`` ``[S, S, 3]`` uint8 BGR in place."""
    s = canvas.shape[0]
    r = FACE_RADIUS * s
    cx, cy = pose.cx, pose.cy
    aa = cv2.LINE_AA
    ax = _pt  # ellipse half-axes use the same fixed-point coordinates
    # shoulders, hair, face
    cv2.ellipse(canvas, _pt(cx, cy + 1.9 * r), ax(1.3 * r, 0.8 * r), 0, 0, 360, person.shirt, -1, aa, SHIFT)
    cv2.ellipse(canvas, _pt(cx, cy - 0.12 * r), ax(person.width * r * 1.12, r * 1.05), 0, 0, 360,
                person.hair, -1, aa, SHIFT)
    cv2.ellipse(canvas, _pt(cx, cy), ax(person.width * r, r), 0, 0, 360, person.skin, -1, aa, SHIFT)
    # eyes and brows (arousal)
    ua = unit(pose.arousal)
    eh = (EYE_H[0] if pose.blink else lerp(EYE_H, ua)) * r
    for side in (-1, 1):
        ex, ey = cx + side * EYE_DX * r, cy + EYE_Y * r
        cv2.ellipse(canvas, _pt(ex, ey), ax(EYE_W * r, eh), 0, 0, 360, EYE_WHITE, -1, aa, SHIFT)
        iris = IRIS * r
        cv2.ellipse(canvas, _pt(ex, ey), ax(iris, min(eh, iris)), 0, 0, 360, IRIS_COLOR, -1, aa, SHIFT)
        by = ey - lerp(BROW_GAP, ua) * r
        cv2.line(canvas, _pt(ex - BROW_W * r, by), _pt(ex + BROW_W * r, by), person.hair,
                 max(1, round(0.07 * r)), aa, SHIFT)
    # nose
    cv2.line(canvas, _pt(cx, cy - 0.05 * r), _pt(cx - 0.06 * r, cy + 0.2 * r), NOSE_COLOR, 1, aa, SHIFT)
    # mouth (valence: corner lift; speech: opening)
    mx, my, mw = cx, cy + MOUTH_Y * r, MOUTH_W * r
    lift = MOUTH_LIFT * r * pose.valence
    xs = np.linspace(-1, 1, 13)
    upper = [(mx + x * mw, my - lift * x * x + lift * 0.5) for x in xs]
    drop = MOUTH_OPEN * r * pose.mouth_open
    lower = [(mx + x * mw, y + drop * (1 - x * x)) for x, (_, y) in zip(xs, upper)]
    if drop > 0.5:
        poly = np.array([_pt(*p) for p in upper + lower[::-1]], np.int32)
        cv2.fillPoly(canvas, [poly], MOUTH_INSIDE, aa, SHIFT)
        cv2.polylines(canvas, [np.array([_pt(*p) for p in lower], np.int32)], False, LIP_COLOR,
                      max(1, round(0.06 * r)), aa, SHIFT)
    cv2.polylines(canvas, [np.array([_pt(*p) for p in upper], np.int32)], False, LIP_COLOR,
                  max(1, round(0.08 * r)), aa, SHIFT)
    if pose.occluded:  # a hand in front of the face: no usable face, no crop
        x0, y0 = int(cx - 0.9 * r), int(cy - 0.5 * r)
        cv2.rectangle(canvas, (x0, y0), (x0 + int(1.8 * r), y0 + int(1.4 * r)), person.skin, -1)
        cv2.rectangle(canvas, (x0, y0), (x0 + int(1.8 * r), y0 + int(1.4 * r)), HAND_EDGE, 1)


def crop(canvas: np.ndarray, pose: Pose, size: int) -> np.ndarray:
    """The face crop ``[size, size, 3]`` centred on the head (CROP_SCALE x R), edge-replicated."""
    s = canvas.shape[0]
    half = CROP_SCALE * FACE_RADIUS * s / 2
    m = np.float32([[size / (2 * half), 0, size / 2 - pose.cx * size / (2 * half)],
                    [0, size / (2 * half), size / 2 - pose.cy * size / (2 * half)]])
    return cv2.warpAffine(canvas, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


# ------------------------------------------------------------------------------------------------
# writing


def ffmpeg_exe() -> str:
    try:
        from pipeline.core.media import ffmpeg_exe as exe
    except ImportError:  # pragma: no cover - the media module is part of the package
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    return exe()


def tool_versions() -> dict:
    """Versions of the tools whose output bytes the dataset depends on."""
    espeak = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True).stdout.strip()
    ff = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {"espeak-ng": espeak.split("  ")[0], "ffmpeg": ff, "opencv": cv2.__version__,
            "numpy": np.__version__}


def write_wav(path: Path, x: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).round().astype("<i2").tobytes())


def encode(frames: np.ndarray, wav: Path, fps: int, dst: Path) -> None:
    """H.264 (yuv420p) + AAC 16 kHz mono mp4 from ``frames`` ``[n, H, W, 3]`` BGR, bit-exact."""
    n, h, w, _ = frames.shape
    cmd = [ffmpeg_exe(), "-nostdin", "-y", "-hide_banner", "-loglevel", "error",
           "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
           "-i", str(wav), "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-preset", "slow", "-crf", str(VIDEO_CRF), "-pix_fmt", "yuv420p",
           "-threads", "1", "-x264-params", "threads=1:lookahead-threads=1",
           "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "1",
           "-fflags", "+bitexact", "-flags", "+bitexact", "-map_metadata", "-1",
           "-movflags", "+faststart", str(dst)]
    proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
    if proc.returncode:
        raise RuntimeError(f"ffmpeg failed writing {dst}: {proc.stderr.decode(errors='replace')[-500:]}")


def write_annotation(path: Path, person: Person) -> None:
    rows = ["valence,arousal"]
    for v, a, off in zip(person.valence, person.arousal, person.unlabeled):
        rows.append(f"{UNLABELED},{UNLABELED}" if off else f"{v:.{LABEL_DECIMALS}f},{a:.{LABEL_DECIMALS}f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def make_video(plan: VideoPlan, cfg: DemoConfig, out: Path, tmp: Path) -> dict:
    """Write one video file, its crops, annotations and transcript; return its summary."""
    rng = np.random.default_rng([cfg.seed, 1000 + int(plan.source[4:])])
    tracks, words = speak(plan, cfg.fps, rng, tmp)
    size = cfg.frame_size
    person_poses = [poses(p, envelope(tr, plan.n_frames, cfg.fps), size, cfg.fps, rng)
                    for p, tr in zip(plan.persons, tracks)]
    frames = np.empty((plan.n_frames, size, size * len(plan.persons), 3), np.uint8)
    missing = {p.id: [] for p in plan.persons}
    for i in range(plan.n_frames):
        for j, person in enumerate(plan.persons):
            canvas = np.empty((size, size, 3), np.uint8)
            canvas[:] = plan.background
            pose = person_poses[j][i]
            draw_person(canvas, person, pose)
            frames[i, :, j * size:(j + 1) * size] = canvas
            if not plan.has_crops:
                continue
            if pose.occluded:
                missing[person.id].append(i + 1)
                continue
            d = out / "cropped_aligned" / person.id
            d.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode(".jpg", crop(canvas, pose, cfg.crop_size),
                                   [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
            (d / f"{i + 1:05d}.jpg").write_bytes(buf.tobytes())
    wav = tmp / f"{plan.source}.wav"
    write_wav(wav, np.sum(tracks, axis=0), SPEECH_RATE)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    encode(frames, wav, cfg.fps, out / "videos" / f"{plan.source}.mp4")
    (out / "transcripts").mkdir(parents=True, exist_ok=True)
    (out / "transcripts" / f"{plan.source}.json").write_text(json.dumps(words, indent=1) + "\n")
    persons = []
    for person in plan.persons:
        if plan.partition != "test":
            folder = "Train_Set" if plan.partition == "train" else "Validation_Set"
            write_annotation(out / "annotations" / folder / f"{person.id}.txt", person)
        persons.append({
            "id": person.id,
            "voice": person.voice,
            "valence_std": round(float(person.valence.std()), 3),
            "arousal_std": round(float(person.arousal.std()), 3),
            "va_correlation": round(float(np.corrcoef(person.valence, person.arousal)[0, 1]), 3),
            "unlabeled_frames": int(person.unlabeled.sum()),
            "missing_crops": missing[person.id],
        })
    return {"source": plan.source, "video": f"videos/{plan.source}.mp4", "partition": plan.partition,
            "n_frames": plan.n_frames, "fps": cfg.fps, "duration": round(plan.n_frames / cfg.fps, 3),
            "has_crops": plan.has_crops, "words": len(words), "persons": persons}


def generate(cfg: DemoConfig, out: Path) -> dict:
    """Write the whole dataset to ``out`` (replaced atomically; only a demo folder is replaced)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "demo.json").exists():
        raise SystemExit(f"{out}: exists and is not a demo dataset (no demo.json); refusing to replace it")
    if shutil.which(ESPEAK) is None:
        raise SystemExit(f"{ESPEAK} not found: install it (Debian/Ubuntu: apt-get install espeak-ng) "
                         "to regenerate the demo; the committed data/demo needs no espeak-ng")
    out.parent.mkdir(parents=True, exist_ok=True)
    plans = plan_videos(cfg)
    with tempfile.TemporaryDirectory(prefix=".demo-", dir=out.parent) as staging:
        staged = Path(staging) / "demo"
        scratch = Path(staging) / "scratch"
        scratch.mkdir()
        command = (f"python -m rjcma.demo --out <this folder> --seed {cfg.seed} --videos {cfg.videos} "
                   f"--seconds {cfg.seconds} --fps {cfg.fps}")
        summary = {"config": asdict(cfg), "tools": tool_versions(), "regenerate": command, "videos": []}
        for plan in tqdm(plans, desc="demo videos", unit="video"):
            summary["videos"].append(make_video(plan, cfg, staged, scratch))
        (staged / "demo.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rjcma.demo",
        description="Generate the synthetic demo dataset (Aff-Wild2 layout: videos, cropped_aligned "
                    "face crops, annotations, word-level transcripts) whose valence/arousal drive "
                    "face, voice and words. Needs espeak-ng. Same seed → byte-identical files.")
    parser.add_argument("--out", type=Path, default=Path("data/demo"), help="dataset root to (re)write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos", type=int, default=N_VIDEOS, help="number of video files")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="mean duration of a video")
    parser.add_argument("--fps", type=int, default=FPS)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(message)s")
    cfg = DemoConfig(seed=args.seed, videos=args.videos, seconds=args.seconds, fps=args.fps)
    summary = generate(cfg, args.out)
    n_files = sum(1 for p in args.out.rglob("*") if p.is_file())
    n_bytes = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    parts = {}
    for v in summary["videos"]:
        parts[v["partition"]] = parts.get(v["partition"], 0) + len(v["persons"])
    log.info("wrote %s: %d videos (%s persons), %d frames, %d files, %.2f MB",
             args.out, len(summary["videos"]), ", ".join(f"{k} {n}" for k, n in parts.items()),
             sum(v["n_frames"] for v in summary["videos"]), n_files, n_bytes / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
