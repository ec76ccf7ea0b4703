"""Real media for tests: videos written frame by frame with OpenCV, audio muxed in by the real ffmpeg.

Import from any test (``from tests.media_fixtures import make_video``; ``conftest.py`` also exposes
``make_video`` and ``make_affwild2`` as fixtures). Everything is deterministic and small.

- :func:`make_video`: an mp4 (mp4v) or avi (MJPG) with a frame-index marker, optionally a face
  photograph pasted in, optionally a sine tone muxed as AAC.
- :func:`make_affwild2`: a tiny dataset root in the Aff-Wild2 layout (videos/, cropped_aligned/,
  annotations/{Train_Set,Validation_Set}/, a two-person video with _left/_right).
- :func:`frame_marker`: the grey level a frame's marker block carries (to check frame alignment).
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.media import ffmpeg_exe

MARKER = 16  # px: the top-left block whose grey level encodes the frame index
AUDIO_RATE = 44100  # Hz of the muxed tone (so extraction really resamples to 16 kHz)
TONE_AMPLITUDE = 0.3
CROP_SIZE = 112  # Aff-Wild2's cropped_aligned images are 112 x 112


def frame_marker(i: int) -> int:
    """Grey level of frame ``i``'s marker block (distinct for consecutive frames, survives mp4v)."""
    return (i * 37) % 200 + 28


def astronaut_face(size: int = CROP_SIZE) -> np.ndarray:
    """A real face photograph (scikit-image's astronaut, cropped to the face), RGB ``[size, size, 3]``."""
    from skimage import data

    img = data.astronaut()[30:230, 140:340]  # the face region of the 512 x 512 photograph
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _frame(i: int, width: int, height: int, face: np.ndarray | None, seed: int = 0) -> np.ndarray:
    """BGR frame ``i``: a moving gradient, the marker block and the face (if any) in the centre."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 3 + i * 5 + seed * 41) % 256, (y * 3) % 256, np.full_like(x, 90)], -1)
    img = img.astype(np.uint8)
    if face is not None:
        s = min(width, height) * 3 // 4
        f = cv2.resize(face, (s, s), interpolation=cv2.INTER_AREA)[..., ::-1]  # RGB → BGR
        top, left = (height - s) // 2, (width - s) // 2
        img[top:top + s, left:left + s] = f
    img[:MARKER, :MARKER] = frame_marker(i)
    return img


def tone(duration: float, rate: int = AUDIO_RATE, hz: float = 440.0,
         amplitude: float = TONE_AMPLITUDE) -> np.ndarray:
    """A sine tone ``[round(duration * rate)]`` float32."""
    t = np.arange(int(round(duration * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM mono wav of float samples in [-1, 1]."""
    path = Path(path)
    pcm = np.clip(np.round(np.asarray(samples) * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def make_video(path: str | Path, n_frames: int = 20, fps: float = 10.0,
               size: tuple[int, int] = (96, 72), with_audio: bool = True,
               face: str | np.ndarray | None = None, audio: np.ndarray | None = None,
               audio_rate: int = AUDIO_RATE, tone_hz: float = 440.0, seed: int = 0) -> Path:
    """Write a real video file and return its path.

    path: ``.mp4`` (mp4v) or ``.avi`` (MJPG). size: (width, height). face: None, ``"astronaut"``
    (a real face photograph) or an RGB uint8 image, pasted in the centre of every frame.
    with_audio: mux ``audio`` (float samples at ``audio_rate``; default a ``tone_hz`` sine of the
    video's duration) as AAC (mp4) / PCM (avi) with the real ffmpeg. seed: shifts the frames'
    pattern (different videos, different bytes).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    face_img = astronaut_face() if isinstance(face, str) and face == "astronaut" else face
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    silent = path.with_name(f".{path.stem}.silent{path.suffix}") if with_audio else path
    writer = cv2.VideoWriter(str(silent), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {silent}")
    for i in range(n_frames):
        writer.write(_frame(i, width, height, face_img, seed))
    writer.release()
    if not with_audio:
        return path
    samples = tone(n_frames / fps, audio_rate, tone_hz) if audio is None else audio
    wav = write_wav(path.with_name(f".{path.stem}.wav"), samples, audio_rate)
    codec = ["-c:a", "pcm_s16le"] if path.suffix.lower() == ".avi" else ["-c:a", "aac"]
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-i", str(silent), "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0",
                    "-c:v", "copy", *codec, str(path)], check=True, capture_output=True)
    silent.unlink()
    wav.unlink()
    return path


def write_annotation(path: str | Path, valence: np.ndarray, arousal: np.ndarray) -> Path:
    """An Aff-Wild2 VA annotation file; NaN is written as -5 (unlabeled)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["valence,arousal"]
    for v, a in zip(valence, arousal):
        rows.append(",".join("-5" if np.isnan(x) else f"{x:.3f}" for x in (v, a)))
    path.write_text("\n".join(rows) + "\n")
    return path


def va_track(video_id: str, n_frames: int, gap: tuple[int, int] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic valence/arousal curves for ``video_id`` with NaN over ``gap`` = [start, stop)."""
    phase = sum(map(ord, video_id)) % 17
    t = np.arange(n_frames, dtype=np.float32)
    v = (0.8 * np.sin((t + phase) / 5)).astype(np.float32)
    a = (0.6 * np.cos((t + phase) / 7)).astype(np.float32)
    if gap:
        v[gap[0]:gap[1]] = np.nan
        a[gap[0]:gap[1]] = np.nan
    return v, a


def write_crops(directory: str | Path, n_frames: int, missing: tuple[int, ...] = ()) -> Path:
    """``directory/00001.jpg …``: 1-based crops of the astronaut face; 0-based ``missing`` frames skipped."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    face = astronaut_face()[..., ::-1]
    for i in range(n_frames):
        if i in missing:
            continue
        img = face.copy()
        img[:MARKER, :MARKER] = frame_marker(i)
        cv2.imwrite(str(directory / f"{i + 1:05d}.jpg"), img)
    return directory


def make_affwild2(root: str | Path, n_frames: int = 20, fps: float = 10.0) -> Path:
    """A tiny Aff-Wild2-style dataset root; returns it.

    - ``videos/train1.mp4``, ``videos/train2.mp4`` (annotations in Train_Set; train2's rows 5..9
      are -5; train1 has crops with frames 3 and 4 missing),
    - ``videos/duo.mp4`` annotated as ``duo_left`` and ``duo_right`` (both Train_Set; duo_right's
      rows 0..2 are -5) with crops for each person (duo_right's frame 0 missing),
    - ``videos/val1.avi`` (Validation_Set, no audio track),
    - ``videos/test1.mp4`` (no annotation: the test partition).
    """
    root = Path(root)
    ann = root / "annotations"
    for k, vid in enumerate(["train1", "train2", "duo", "test1", "val1"]):
        ext = ".avi" if vid == "val1" else ".mp4"
        make_video(root / "videos" / f"{vid}{ext}", n_frames=n_frames, fps=fps, seed=k,
                   tone_hz=300.0 + 60 * k, with_audio=vid != "val1")
    for vid, part, gap in [("train1", "Train_Set", None), ("train2", "Train_Set", (5, 10)),
                           ("duo_left", "Train_Set", None), ("duo_right", "Train_Set", (0, 3)),
                           ("val1", "Validation_Set", None)]:
        write_annotation(ann / part / f"{vid}.txt", *va_track(vid, n_frames, gap))
    write_crops(root / "cropped_aligned" / "train1", n_frames, missing=(3, 4))
    write_crops(root / "cropped_aligned" / "duo_left", n_frames)
    write_crops(root / "cropped_aligned" / "duo_right", n_frames, missing=(0,))
    return root
