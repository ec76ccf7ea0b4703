"""Is the demo dataset learnable? Simple per-frame features + ridge regression, CCC on held-out videos.

Features per frame (no learned model, no pipeline stage):
- visual: the face crop (or the whole frame where a video has no crops) as 16x16 grayscale pixels
  of the 40x40 centre, like the pipeline's default ``pixels`` backbone; zeros where the crop is missing;
- audio: from the mp4's AAC track decoded by the real ffmpeg at 16 kHz: log RMS, voiced fraction,
  zero-crossing rate, spectral centroid, an autocorrelation pitch and 16 log band energies over the
  0.96 s window that starts at the frame (the paper's audio window);
- text: polarity (-2..2, from the generator's word lists) of the word covering the frame and of
  the words within +-2 s.
Every feature is also averaged over +-1 s (a stand-in for the TCN's temporal context). Fit on the
training persons, report the challenge CCC (all frames of the validation persons concatenated).
With ``--pipeline data`` the same fit also runs on the pipeline's own per-frame features (the
feature caches, labels.h5 and fold 0 of folds.json under ``data``).

    python bench/demo_learnability.py [--data data/demo] [--pipeline data]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/<name>.py`
from rjcma.demo import WORDS, ffmpeg_exe  # noqa: E402

RATE = 16000
AUDIO_WINDOW = 0.96  # seconds from the frame's start
TEXT_CONTEXT = 2.0  # seconds either side
SMOOTH = 1.0  # seconds either side
RIDGE = 1.0
BANDS = 16  # log-spaced spectrum bands of the audio window
POLARITY = {w: level - 2 for level, words in enumerate(WORDS) for w in words}


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    mx, my = x.mean(), y.mean()
    return float(2 * ((x - mx) * (y - my)).mean() / (x.var() + y.var() + (mx - my) ** 2))


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def pixels(img: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(cv2.resize(img, (48, 48), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return cv2.resize(g[4:44, 4:44], (16, 16), interpolation=cv2.INTER_AREA).ravel().astype(np.float32) / 255


def visual(root: Path, pid: str, frames: list[np.ndarray], side: int | None) -> np.ndarray:
    crops = root / "cropped_aligned" / pid
    out = np.zeros((len(frames), 256), np.float32)
    for i, f in enumerate(frames):
        if crops.is_dir():
            p = crops / f"{i + 1:05d}.jpg"
            if p.exists():
                out[i] = pixels(cv2.imread(str(p)))
        else:
            h = f.shape[0]
            out[i] = pixels(f if side is None else f[:, side * h:(side + 1) * h])
    return out


def audio(video: Path, n: int, fps: float) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(video), "-vn", "-ac", "1",
                          "-ar", str(RATE), "-f", "s16le", "-"], capture_output=True, check=True).stdout
    x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    x = np.concatenate([x, np.zeros(int(RATE * AUDIO_WINDOW) + 1, np.float32)])
    win = int(RATE * AUDIO_WINDOW)
    edges = np.geomspace(100, 7500, BANDS + 1)
    out = np.zeros((n, 6 + BANDS), np.float32)
    for i in range(n):
        s = x[int(i / fps * RATE):int(i / fps * RATE) + win]
        sub = s[: (len(s) // 400) * 400].reshape(-1, 400)  # 25 ms blocks
        rms = np.sqrt((sub ** 2).mean(1))
        voiced = rms > 0.01
        spec = np.abs(np.fft.rfft(s))
        freqs = np.fft.rfftfreq(len(s), 1 / RATE)
        pitch = 0.0
        if voiced.any():
            block = sub[int(np.argmax(rms))]
            ac = np.correlate(block, block, "full")[len(block) - 1:]
            lo, hi = RATE // 400, RATE // 60
            pitch = RATE / (lo + int(np.argmax(ac[lo:hi])))
        bands = [np.log(spec[(freqs >= lo) & (freqs < hi)].mean() + 1e-3) for lo, hi in zip(edges, edges[1:])]
        loud = np.log(rms[voiced].mean() + 1e-4) if voiced.any() else -9
        zcr = (np.abs(np.diff(np.sign(s))) > 0).mean()
        centroid = (spec * freqs).sum() / (spec.sum() + 1e-9) / 1000
        out[i] = [*bands, np.log(rms.mean() + 1e-4), voiced.mean(), loud, zcr, centroid,
                  pitch / 100]
    return out


def text(words: list[dict], n: int, fps: float) -> np.ndarray:
    out = np.zeros((n, 2), np.float32)
    t = np.arange(n) / fps
    for w in words:
        pol = POLARITY.get(w["word"], 0)
        out[(t >= w["start"]) & (t < w["end"]), 0] = pol
    for i in range(n):
        near = [POLARITY[w["word"]] for w in words
                if w["word"] in POLARITY and abs((w["start"] + w["end"]) / 2 - t[i]) < TEXT_CONTEXT]
        out[i, 1] = np.mean(near) if near else 0
    return out


def smooth(f: np.ndarray, fps: float) -> np.ndarray:
    k = int(SMOOTH * fps)
    c = np.cumsum(np.pad(f, ((k + 1, k), (0, 0)), mode="edge"), 0)
    return (c[2 * k + 1:] - c[:-2 * k - 1]) / (2 * k + 1)


def labels(path: Path) -> np.ndarray:
    y = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    y[y == -5] = np.nan
    return y


def design(items: list, combo: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Labelled frames of ``items``: features of the modalities in ``combo`` and target column ``k``."""
    x = np.concatenate([np.concatenate([f[m] for m in combo], 1) for f, _ in items])
    y = np.concatenate([lab[:, k] for _, lab in items])
    ok = ~np.isnan(y)
    return x[ok], y[ok]


def simple_sets(root: Path) -> dict[str, list]:
    """Train/validation persons of the demo at ``root`` with this script's simple features."""
    summary = json.loads((root / "demo.json").read_text())
    sets = {"train": [], "validation": []}
    for v in summary["videos"]:
        if v["partition"] == "test":
            continue
        frames = read_frames(root / v["video"])
        fa = audio(root / v["video"], len(frames), v["fps"])
        words = json.loads((root / "transcripts" / f"{v['source']}.json").read_text())
        ft = text(words, len(frames), v["fps"])
        folder = "Train_Set" if v["partition"] == "train" else "Validation_Set"
        for j, p in enumerate(v["persons"]):
            side = None if len(v["persons"]) == 1 else j
            fv = visual(root, p["id"], frames, side)
            feats = {"visual": fv, "audio": fa, "text": ft}
            feats = {k: np.concatenate([f, smooth(f, v["fps"])], 1) for k, f in feats.items()}
            sets[v["partition"]].append((feats, labels(root / "annotations" / folder / f"{p['id']}.txt")))
    return sets


def pipeline_sets(data: Path) -> dict[str, list]:
    """Fold 0 of the pipeline's own outputs under ``data`` (manifest, labels.h5, feature caches)."""
    import h5py

    from pipeline.core import layout
    from pipeline.core.frames import frame_features
    from pipeline.core.manifest import read_manifest

    entries = {e.id: e for e in read_manifest(data)}
    fold = json.loads(layout.folds_file(data).read_text())["folds"][0]
    sets = {"train": [], "validation": []}
    with h5py.File(layout.labels_file(data), "r") as lab:
        for part in sets:
            for vid in fold[part]:
                e = entries[vid]
                feats = {}
                for m in layout.MODALITIES:
                    path = layout.feature_path(m, e.shard, vid, data)
                    if path.exists():
                        f = frame_features(path)
                        feats[m] = np.concatenate([f, smooth(f, e.fps)], 1)
                y = np.stack([lab[vid]["valence"][()], lab[vid]["arousal"][()]], 1)
                sets[part].append((feats, y))
    return sets


def table(sets: dict[str, list]) -> None:
    """Ridge fit on the training persons → challenge CCC on the validation persons, per modality set."""
    have = set.intersection(*(set(f) for part in sets.values() for f, _ in part))
    print(f"{'features':<22}{'valence CCC':>12}{'arousal CCC':>12}   (train {len(sets['train'])}, "
          f"held-out validation {len(sets['validation'])} persons)")
    for combo in (["visual"], ["audio"], ["text"], ["audio", "visual"], ["audio", "visual", "text"]):
        if not set(combo) <= have:
            continue
        row = []
        for k in range(2):  # valence, arousal
            xtr, ytr = design(sets["train"], combo, k)
            xva, yva = design(sets["validation"], combo, k)
            mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
            xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
            a = np.c_[xtr, np.ones(len(xtr))]
            w = np.linalg.solve(a.T @ a + RIDGE * len(a) * 1e-3 * np.eye(a.shape[1]), a.T @ ytr)
            row.append(ccc(np.c_[xva, np.ones(len(xva))] @ w, yva))
        print(f"{'+'.join(combo):<22}{row[0]:>12.3f}{row[1]:>12.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/demo"), help="the demo dataset root")
    ap.add_argument("--pipeline", type=Path, default=None, metavar="DATA",
                    help="also fit on the pipeline's own per-frame features of fold 0 under DATA "
                         "(e.g. data, after the manifest and feature stages ran on the demo)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    sets = simple_sets(args.data)
    print(f"simple features of {sum(map(len, sets.values()))} persons in {time.perf_counter() - t0:.1f} s")
    table(sets)
    if args.pipeline is not None:
        print(f"\npipeline features ({args.pipeline}, fold 0), each also averaged over +-{SMOOTH:g} s:")
        table(pipeline_sets(args.pipeline))


if __name__ == "__main__":
    main()
