"""Video probing and audio extraction with ffmpeg (through ffmpeg-python) and OpenCV.

ffmpeg is the system ``ffmpeg`` when one is on PATH, otherwise the static binary that the
``imageio-ffmpeg`` package ships (so ``pip install`` alone sets everything up). That binary comes
without ``ffprobe``, so :func:`probe` reads

- fps, width, height and the frame count with OpenCV (the decoder the visual stage uses); the
  container's frame count (``CAP_PROP_FRAME_COUNT``) is trusted only when it agrees with
  duration × fps, otherwise the frames are counted by decoding them (``VideoInfo.frame_count``
  says which was used);
- duration and whether there is an audio stream from ffmpeg's stream listing on stderr
  (``ffmpeg -i FILE``).

Audio is extracted to 16 kHz mono 16-bit PCM wav with all metadata stripped and ffmpeg's bitexact
flags, so that identical inputs give byte-identical files. A video without an audio track gets a
wav of silence of the video's duration (and a warning), so downstream features stay defined.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from pipeline.core.atomic import atomic_path

SAMPLE_RATE = 16000  # Hz, what VGGish and Vosk expect
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM
FRAME_COUNT_SLACK = 2  # frames: header count vs duration x fps beyond this (and 1 %) → decode to count
COUNT_MODES = ("auto", "header", "decode")

log = logging.getLogger("rjcma.media")

_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_AUDIO_RE = re.compile(r"Stream #\d+:\d+\S*.*?: Audio:")
_VIDEO_RE = re.compile(r"Stream #\d+:\d+\S*.*?: Video:")
_PREFIX_RE = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
_NO_OUTPUT = "At least one output file must be specified"
_GENERIC = ("Error opening input file", "Error opening output file", "Conversion failed")


# Keep the audio's start offset: pad with silence from t = 0 (ffmpeg otherwise drops a late start).
ALIGN_AUDIO = "aresample=async=1:first_pts=0"


class MediaError(RuntimeError):
    """A media file that cannot be read or converted; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about a video file."""

    fps: float
    n_frames: int  # decodable video frames
    duration: float  # seconds (the container's, else n_frames / fps)
    has_audio: bool
    width: int
    height: int
    frame_count: str = "header"  # how n_frames was obtained: header | decoded
    header_frames: int = 0  # the container's frame count (CAP_PROP_FRAME_COUNT), for reports


def ffmpeg_exe() -> str:
    """The ffmpeg binary: ``ffmpeg`` on PATH, else the one bundled with imageio-ffmpeg."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise MediaError("no ffmpeg: none on PATH and the imageio-ffmpeg package is not installed "
                         "(pip install imageio-ffmpeg, or install your system's ffmpeg)") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def _reason(stderr: bytes | str, path: str | Path | None = None, lines: int = 2) -> str:
    """ffmpeg's last ``lines`` distinct messages, without ``[demuxer @ 0x..]`` / file-name prefixes."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    out: list[str] = []
    for ln in text.splitlines():
        ln = _PREFIX_RE.sub("", ln.strip())
        if path is not None and ln.startswith(f"{path}: "):
            ln = ln[len(str(path)) + 2:]
        if ln and ln not in out and not ln.startswith(_NO_OUTPUT):
            out.append(ln)
    specific = [ln for ln in out if not ln.startswith(_GENERIC)]
    return "; ".join((specific or out)[-lines:]) or "no message from ffmpeg"


def _ffmpeg_header(path: Path) -> str:
    """ffmpeg's description of the input (its stderr for ``ffmpeg -i path`` with no output)."""
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                       capture_output=True, check=False)
    return r.stderr.decode("utf-8", "replace")


def _count_frames(path: Path) -> int:
    """Frames OpenCV can decode from ``path`` (grab without converting: decode cost only)."""
    cap = cv2.VideoCapture(str(path))
    try:
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def probe(path: str | Path, count: str = "auto") -> VideoInfo:
    """Describe a video file; :class:`MediaError` (naming the file) when it cannot be decoded.

    ``count``: ``auto`` trusts the container's frame count when it agrees with duration × fps
    (else decodes to count), ``header`` always trusts it, ``decode`` always counts by decoding.
    """
    path = Path(path)
    if count not in COUNT_MODES:
        raise ValueError(f"count must be one of {COUNT_MODES}, got {count!r}")
    if path.is_dir():
        raise MediaError(f"{path}: a directory, not a video file")
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file")
    header = _ffmpeg_header(path)
    if not _VIDEO_RE.search(header):
        reason = "no video stream" if "Input #0" in header else _reason(header, path)
        raise MediaError(f"{path}: not a readable video ({reason})")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise MediaError(f"{path}: OpenCV cannot open the video")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        header_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok, _ = cap.read()
        if not ok:
            raise MediaError(f"{path}: no decodable video frame")
    finally:
        cap.release()
    if not (fps > 0 and np.isfinite(fps)):
        raise MediaError(f"{path}: unknown frame rate ({fps})")
    m = _DURATION_RE.search(header)
    container = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None
    n_frames, how = header_count, "header"
    if count == "decode" or header_count <= 0:
        n_frames, how = _count_frames(path), "decoded"
    elif count == "auto" and container:
        expected = container * fps
        if abs(header_count - expected) > max(FRAME_COUNT_SLACK, 0.01 * expected):
            log.debug("%s: header says %d frames, duration x fps = %.1f; counting by decoding",
                      path, header_count, expected)
            n_frames, how = _count_frames(path), "decoded"
    if n_frames <= 0:
        raise MediaError(f"{path}: no decodable video frames")
    if how == "decoded" and n_frames != header_count:
        log.warning("%s: the container says %d frames, %d decode (truncated or damaged file?); "
                    "using %d", path, header_count, n_frames, n_frames)
    duration = container if container else n_frames / fps
    return VideoInfo(fps=fps, n_frames=n_frames, duration=float(duration),
                     has_audio=bool(_AUDIO_RE.search(header)), width=width, height=height,
                     frame_count=how, header_frames=header_count)


def write_silence(dst: str | Path, duration: float, sample_rate: int = SAMPLE_RATE) -> Path:
    """Atomically write ``duration`` seconds of 16-bit mono silence as a wav file."""
    n = int(round(duration * sample_rate))
    with atomic_path(dst) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(SAMPLE_WIDTH)
            w.setframerate(sample_rate)
            w.writeframes(np.zeros(n, dtype="<i2").tobytes())
    return Path(dst)


def extract_wav(src: str | Path, dst: str | Path, sample_rate: int = SAMPLE_RATE,
                info: VideoInfo | None = None) -> Path:
    """Decode ``src``'s first audio stream to a 16-bit mono wav at ``sample_rate`` (atomic).

    The wav's sample 0 is at time 0 of the video: an audio stream that starts late is padded with
    silence (:data:`ALIGN_AUDIO`), so frame i at i/fps and the audio at i/fps stay in step.
    The output has no metadata and ffmpeg's bitexact flags: identical input → identical bytes.
    Without an audio stream the wav holds silence of the video's duration (a debug line: the
    callers report it, once per stage or as a note of ``predict``).
    ``info`` (from :func:`probe`) saves probing again. Returns ``dst``.
    """
    src, dst = Path(src), Path(dst)
    info = info or probe(src)
    if not info.has_audio:
        log.debug("%s: no audio stream; writing %.2f s of silence to %s", src, info.duration, dst)
        return write_silence(dst, info.duration, sample_rate)
    with atomic_path(dst) as tmp:
        stream = ffmpeg.input(str(src))["a:0"].output(
            str(tmp), format="wav", acodec="pcm_s16le", ac=1, ar=sample_rate,
            af=ALIGN_AUDIO, map_metadata=-1, fflags="+bitexact", **{"flags:a": "+bitexact"})
        try:
            ffmpeg.run(stream, cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True,
                       overwrite_output=True)
        except ffmpeg.Error as e:
            raise MediaError(f"{src}: ffmpeg could not extract audio ({_reason(e.stderr, tmp)})") from None
    return dst


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """``(samples [n] float32 in [-1, 1), sample_rate)`` of a 16-bit PCM wav (channels averaged)."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != SAMPLE_WIDTH:
                raise MediaError(f"{path}: {8 * w.getsampwidth()}-bit samples; expected 16-bit PCM")
            sr, channels = w.getframerate(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as e:
        raise MediaError(f"{path}: not a readable wav file ({e})") from e
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x, sr
