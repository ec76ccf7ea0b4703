"""The built-in demo dataset: the committed data/demo has the Aff-Wild2 layout and consistent files;
the generator is deterministic (only where espeak-ng is installed: CI never regenerates)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from rjcma import demo
from rjcma.demo import DemoConfig, ffmpeg_exe, generate, main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
MAX_BYTES = 4_500_000  # the committed demo stays a few MB
CROP_NAME = re.compile(r"^\d{5}\.jpg$")
has_espeak = shutil.which(demo.ESPEAK) is not None


def frame_count(video: Path) -> tuple[int, int, int]:
    """(frames decoded by OpenCV, height, width)."""
    cap = cv2.VideoCapture(str(video))
    n, shape = 0, (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape[:2]
    cap.release()
    return n, *shape


def audio_seconds(video: Path) -> tuple[float, float]:
    """(duration, RMS) of the audio track decoded by the real ffmpeg at 16 kHz mono."""
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(video), "-vn",
           "-ac", "1", "-ar", "16000", "-f", "s16le", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    return x.size / 16000, float(np.sqrt(np.mean(x ** 2)))


def read_annotation(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    assert lines[0] == "valence,arousal", f"{path}: header {lines[0]!r}"
    return np.array([[float(v) for v in line.split(",")] for line in lines[1:]], np.float32)


def check_dataset(root: Path) -> dict:
    """Every layout promise of the demo; returns counts for the caller's own expectations."""
    summary = json.loads((root / "demo.json").read_text())
    annotated = {p.stem: p for p in (root / "annotations").glob("*_Set/*.txt")}
    videos = {v["source"]: v for v in summary["videos"]}
    assert sorted(p.stem for p in (root / "videos").glob("*.mp4")) == sorted(videos)
    counts = {"train": 0, "validation": 0, "test": 0, "pairs": 0, "no_crops": 0, "missing_crops": 0,
              "unlabeled": 0}
    seen_ids = set()
    for source, v in videos.items():
        video = root / v["video"]
        n, h, w = frame_count(video)
        assert n == v["n_frames"], f"{video}: {n} frames decoded, demo.json says {v['n_frames']}"
        persons = [p["id"] for p in v["persons"]]
        assert w == h * len(persons), f"{video}: {w}x{h} for {len(persons)} person(s)"
        if len(persons) == 2:
            assert persons == [f"{source}_left", f"{source}_right"]
            counts["pairs"] += 1
        seconds, rms = audio_seconds(video)
        assert abs(seconds - n / v["fps"]) < 0.1, f"{video}: audio {seconds:.2f} s vs {n / v['fps']:.2f} s"
        assert rms > 1e-3, f"{video}: silent audio track"
        words = json.loads((root / "transcripts" / f"{source}.json").read_text())
        assert len(words) > 0
        last_end = 0.0
        for word in words:
            assert set(word) == {"word", "start", "end"} and word["word"].strip()
            assert last_end <= word["start"] < word["end"] <= n / v["fps"], f"{source}: {word}"
            last_end = word["end"]
        for pid in persons:
            seen_ids.add(pid)
            counts[v["partition"]] += 1
            label_file = annotated.get(pid)
            if v["partition"] == "test":
                assert label_file is None, f"{pid}: a test video must have no annotation"
            else:
                folder = "Train_Set" if v["partition"] == "train" else "Validation_Set"
                assert label_file == root / "annotations" / folder / f"{pid}.txt"
                y = read_annotation(label_file)
                assert y.shape == (n, 2), f"{label_file}: {y.shape[0]} rows for {n} frames"
                off = (y == -5).all(1)
                assert ((y == -5).any(1) == off).all(), f"{label_file}: -5 in one column only"
                labelled = y[~off]
                assert (np.abs(labelled) <= 1).all()
                counts["unlabeled"] += int(off.sum())
                if labelled.shape[0] > 30:  # each target varies on its own inside every video
                    assert labelled.std(0).min() > 0.1, f"{label_file}: too little variation"
                    assert abs(np.corrcoef(labelled.T)[0, 1]) < 0.5, f"{label_file}: valence ~ arousal"
            crops = root / "cropped_aligned" / pid
            if not crops.is_dir():
                assert not v["has_crops"]
                counts["no_crops"] += 1
                continue
            assert v["has_crops"]
            names = sorted(p.name for p in crops.iterdir())
            assert all(CROP_NAME.match(name) for name in names), f"{crops}: unexpected file names"
            numbers = [int(name[:5]) for name in names]
            assert 1 <= numbers[0] and numbers[-1] <= n, f"{crops}: frame numbers outside 1..{n}"
            counts["missing_crops"] += n - len(numbers)
            for name in names[:: max(1, len(names) // 5)]:
                img = cv2.imread(str(crops / name))
                assert img is not None and img.shape == (demo.CROP_SIZE, demo.CROP_SIZE, 3), crops / name
    assert set(annotated) <= seen_ids, f"annotations without a video: {set(annotated) - seen_ids}"
    crop_dirs = {p.name for p in (root / "cropped_aligned").iterdir()}
    assert crop_dirs <= seen_ids, f"crops without a video: {crop_dirs - seen_ids}"
    return counts


def test_committed_demo_has_the_affwild2_layout():
    assert DEMO.is_dir(), "data/demo is missing: regenerate with `python -m rjcma.demo --out data/demo`"
    counts = check_dataset(DEMO)
    assert counts["train"] >= 8 and counts["validation"] >= 3 and counts["test"] == 2
    assert counts["pairs"] == 1
    assert 1 <= counts["no_crops"] <= 3
    assert counts["missing_crops"] > 0 and counts["unlabeled"] > 0


def test_committed_demo_is_small():
    size = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert size <= MAX_BYTES, f"data/demo is {size / 1e6:.2f} MB"


def test_help_and_refusal_to_replace_foreign_folders(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "espeak-ng" in capsys.readouterr().out
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not a demo")
    with pytest.raises(SystemExit, match="not a demo dataset"):
        generate(DemoConfig(videos=2, seconds=1), foreign)
    assert (foreign / "keep.txt").read_text() == "not a demo"


@pytest.mark.skipif(not has_espeak, reason="espeak-ng is not installed (only needed to regenerate the demo)")
def test_generator_is_deterministic_and_complete(tmp_path):
    cfg = DemoConfig(seed=3, videos=6, seconds=3)
    a, b = tmp_path / "a", tmp_path / "b"
    generate(cfg, a)
    generate(cfg, b)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), f"{rel} differs between identical runs"
    counts = check_dataset(a)
    assert counts["test"] == 2 and counts["pairs"] == 1 and counts["no_crops"] == 1
    generate(DemoConfig(seed=4, videos=6, seconds=3), a)  # replaces its own demo folder
    assert (a / "videos" / "demo01.mp4").read_bytes() != (b / "videos" / "demo01.mp4").read_bytes()
