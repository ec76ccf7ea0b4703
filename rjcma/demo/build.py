"""Generating the whole demo dataset: one video (frames, crops, speech, transcript, annotations) at
a time into a staging folder, then swapped in."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.core.layout import crop_path
from rjcma.demo.encode import encode, tool_versions, write_annotation, write_wav
from rjcma.demo.faces import crop, draw_person, poses
from rjcma.demo.plan import DemoConfig, VideoPlan, plan_videos
from rjcma.demo.speech import ESPEAK, SPEECH_RATE, envelope, speak


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
            crop_path(d, i).write_bytes(buf.tobytes())  # 00001.jpg = frame 0
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
