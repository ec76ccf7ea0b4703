"""Probing and audio extraction on real media written in the test (OpenCV frames + real ffmpeg)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from pipeline.core.media import MediaError, extract_wav, ffmpeg_exe, probe, read_wav
from tests.media_fixtures import AUDIO_RATE, TONE_AMPLITUDE, make_video, tone, write_wav


def test_ffmpeg_exe_runs():
    assert os.access(ffmpeg_exe(), os.X_OK)


def test_ffmpeg_exe_prefers_the_system_ffmpeg(tmp_path, monkeypatch):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert ffmpeg_exe() == str(fake)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "imageio_ffmpeg" in ffmpeg_exe()  # no ffmpeg on PATH: the pip-installed binary


@pytest.mark.parametrize("name, fps, with_audio", [("a.mp4", 10.0, True), ("b.avi", 25.0, False),
                                                    ("c.avi", 30.0, True)])
def test_probe_reads_real_videos(tmp_path, name, fps, with_audio):
    path = make_video(tmp_path / name, n_frames=24, fps=fps, size=(80, 60), with_audio=with_audio)
    info = probe(path)
    assert info.fps == pytest.approx(fps)
    assert info.n_frames == 24
    assert info.duration == pytest.approx(24 / fps, abs=0.05)
    assert info.has_audio is with_audio
    assert (info.width, info.height) == (80, 60)
    assert info.frame_count == "header"


def test_probe_counts_by_decoding_when_asked(tmp_path):
    path = make_video(tmp_path / "a.mp4", n_frames=17, fps=10.0)
    info = probe(path, count="decode")
    assert (info.n_frames, info.frame_count) == (17, "decoded")


@pytest.mark.parametrize("damage, reason", [
    (lambda b: b[: len(b) // 2], "moov atom not found"),   # truncated mp4 (index at the end)
    (lambda b: b"", "empty file"),
    (lambda b: b"\x00junk" * 100, "not a readable video"),
])
def test_probe_bad_video_names_file_and_reason(tmp_path, damage, reason):
    good = make_video(tmp_path / "good.mp4", n_frames=10)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(MediaError) as e:
        probe(bad)
    assert str(bad) in str(e.value) and reason in str(e.value)


def test_truncated_avi_frames_are_counted_by_decoding(tmp_path, caplog):
    good = make_video(tmp_path / "t.avi", n_frames=40, fps=10.0, with_audio=False)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # the header still says 40
    with caplog.at_level(logging.WARNING):
        info = probe(cut)
    assert info.frame_count == "decoded" and info.header_frames == 40
    assert 10 < info.n_frames < 30
    assert "cut.avi: the container says 40 frames" in caplog.text
    assert probe(cut, count="header").n_frames == 40  # what trusting the header would have said


def test_probe_wav_only_file_is_not_a_video(tmp_path):
    wav = write_wav(tmp_path / "x.wav", tone(0.5), AUDIO_RATE)
    with pytest.raises(MediaError, match="no video stream"):
        probe(wav)


def test_extract_wav_resamples_to_16k_mono_deterministically(tmp_path):
    path = make_video(tmp_path / "a.mp4", n_frames=20, fps=10.0, tone_hz=440.0)
    out = extract_wav(path, tmp_path / "out" / "a.wav")
    x, sr = read_wav(out)
    assert sr == 16000 and x.dtype == np.float32
    assert len(x) == pytest.approx(2.0 * 16000, abs=16000 * 0.05)
    # it is the tone: dominant frequency 440 Hz, amplitude preserved through AAC + resampling
    spec = np.abs(np.fft.rfft(x[4000:20000]))
    assert np.fft.rfftfreq(16000, 1 / 16000)[spec.argmax()] == pytest.approx(440, abs=2)
    assert np.abs(x).max() == pytest.approx(TONE_AMPLITUDE, rel=0.1)
    again = extract_wav(path, tmp_path / "again.wav")
    assert out.read_bytes() == again.read_bytes()
    assert b"LIST" not in out.read_bytes()[:200]  # no metadata chunk (encoder name, dates)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.wav"]  # no temp left behind


def test_extract_wav_of_silent_video_is_silence_with_a_log_line(tmp_path, caplog):
    path = make_video(tmp_path / "mute.avi", n_frames=15, fps=10.0, with_audio=False)
    with caplog.at_level(logging.DEBUG, logger="rjcma.media"):  # per-video lines: debug (-v)
        out = extract_wav(path, tmp_path / "mute.wav")
    assert "no audio stream" in caplog.text and str(path) in caplog.text
    x, sr = read_wav(out)
    assert sr == 16000 and len(x) == 24000 and not x.any()


def test_extract_wav_failure_names_file_and_leaves_nothing(tmp_path):
    good = make_video(tmp_path / "good.mp4", n_frames=10)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(MediaError, match="bad.mp4"):
        extract_wav(bad, tmp_path / "w" / "bad.wav")
    assert not list((tmp_path / "w").glob("*")) if (tmp_path / "w").exists() else True


def test_read_wav_rejects_non_wav(tmp_path):
    f = tmp_path / "x.wav"
    f.write_bytes(b"not a wav")
    with pytest.raises(MediaError, match="x.wav: not a readable wav"):
        read_wav(f)


def test_audio_that_starts_late_stays_in_step_with_the_video(tmp_path):
    """An audio stream starting 0.5 s into the video: the wav keeps the 0.5 s of silence."""
    import subprocess

    video = make_video(tmp_path / "v.mp4", n_frames=30, fps=10.0, with_audio=False)
    wav = write_wav(tmp_path / "t.wav", tone(2.0), AUDIO_RATE)
    late = tmp_path / "late.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(video), "-itsoffset", "0.5",
                    "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
                    str(late)], check=True, capture_output=True)
    samples, sr = read_wav(extract_wav(late, tmp_path / "late.wav"))
    loud = np.flatnonzero(np.abs(samples) > TONE_AMPLITUDE / 4)
    assert abs(loud[0] / sr - 0.5) < 0.03  # the tone starts at 0.5 s, not at 0
