"""Writing the demo's files: bit-exact H.264 + AAC mp4, wav, annotation text; tool versions."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import cv2
import numpy as np

from rjcma.demo.plan import LABEL_DECIMALS, UNLABELED, Person
from rjcma.demo.speech import ESPEAK

AUDIO_RATE = 16000
AUDIO_BITRATE = "16k"
VIDEO_CRF = 32


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
