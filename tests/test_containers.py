"""A folder of videos in every common container: each is found, probed, its audio extracted and its
frames decoded (real ffmpeg and OpenCV); an unknown file is skipped with a warning naming it."""

from __future__ import annotations

import subprocess

import pytest

from pipeline.core.media import extract_wav, ffmpeg_exe, read_wav
from pipeline.core.params import DataParams
from pipeline.dataset.scan import scan
from pipeline.visual.faces import iter_video_frames
from tests.media_fixtures import make_video

N_FRAMES, FPS = 20, 10.0
CODECS = {  # container → ffmpeg codec arguments it is commonly written with
    ".mkv": ["-c", "copy"], ".mov": ["-c", "copy"], ".m4v": ["-c", "copy"],
    ".webm": ["-c:v", "libvpx", "-b:v", "200k", "-c:a", "libopus"],
    ".mpg": ["-c:v", "mpeg1video", "-r", "25", "-q:v", "4", "-c:a", "mp2"],  # MPEG-1 has no 10 fps
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("containers")
    src = make_video(root / "clip_mp4.mp4", n_frames=N_FRAMES, fps=FPS)
    make_video(root / "sub" / "clip_avi.avi", n_frames=N_FRAMES, fps=FPS, seed=1)
    for ext, codec in CODECS.items():
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i",
                        str(src), *codec, str(root / f"clip_{ext[1:]}{ext}")],
                       check=True, capture_output=True)
    (root / "notes.txt").write_text("not a video")
    (root / "clip.xyz").write_bytes(b"\x00" * 64)
    return root


def test_every_container_is_a_video(folder, tmp_path):
    result = scan(folder, DataParams(layout="folder", shards=1), progress=False)
    ids = sorted(e.id for e in result.entries)
    assert ids == sorted(f"clip_{ext}" for ext in ("mp4", "avi", "mkv", "mov", "m4v", "webm", "mpg"))
    assert result.errors == []
    (skipped,) = [p for p in result.warnings if "skipped" in p.message]
    assert skipped.path.endswith("clip.xyz") and ".xyz is not a known video container" in skipped.message
    for e in result.entries:
        fps = 25.0 if e.id == "clip_mpg" else FPS
        assert e.fps == pytest.approx(fps, rel=0.05) and e.has_audio, e
        assert abs(e.n_frames - N_FRAMES / FPS * fps) <= 1, e
        samples, sr = read_wav(extract_wav(e.source, tmp_path / f"{e.id}.wav"))
        assert sr == 16000 and abs(len(samples) / sr - N_FRAMES / FPS) < 0.2, e.id
        assert samples.std() > 0.05, e.id  # the tone, not silence
        frames = list(iter_video_frames(e.source))
        assert abs(len(frames) - e.n_frames) <= 1 and frames[0].shape == (72, 96, 3), e.id
