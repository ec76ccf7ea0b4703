"""Peak memory of one training epoch against the dataset's size (the streaming reader).

For each size (default 30,000 and 300,000 frames) writes a synthetic dataset of real HDF5 caches at
the paper's sizes with ``tests/synthetic.py`` (``raw=True``: visual ``embedding`` 512-d float32 +
``faces`` 48x48x3 uint8 + ``face_present``, audio ``vggish`` 128-d float32 + the 10 ms ``logmel``,
text 768-d float16 words + ``frame_word``), 90 % training and 10 % validation videos of
``--video-frames`` frames, then measures in a FRESH process per (size, path):

- ``frozen``: ``fusion.train.train_model`` for one epoch at K = 300, stride 200, batch 12, l = 3 on
  the cached embeddings: the streaming normaliser pass, every training window, the streamed
  validation and stitching. ``--model paper`` is the paper's model; ``tiny`` keeps K, the batch and
  the input dims but narrows the TCNs to 8 channels and l to 1 (a fast step on a shared 2-core CPU:
  the epoch then measures the data path, and the smaller constant part makes any growth with the
  data MORE visible);
- ``finetune``: one epoch of the training loader with the fine-tuning inputs (audio ``logmel``
  ``[12, 300, 96, 64]``, visual ``faces`` ``[12, 300, 48, 48, 3]`` uint8, text ``embedding``), each
  batch consumed by a tiny stand-in backbone (faces to float, pooled; patches pooled; a linear
  layer per modality, the CCC loss, backward, Adam): the data side of that path, memory the point.

Reports each process's peak RSS (``ru_maxrss``), and with ``--workers N`` also the peak PSS of the
process tree (the trainer + its reader workers, sampled from /proc every 50 ms). The requirement:
the largest size's peak <= 1.25x the smallest's, per path. Prints a Markdown table.

    python bench/bench_memory.py [--sizes 30000 300000] [--video-frames 5000] [--model tiny]
                                 [--paths frozen finetune] [--workers 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from any directory

PAPER_DIMS = {"audio": 128, "visual": 512, "text": 768}
MODS = ("audio", "visual", "text")
RAW = {"audio": "logmel", "visual": "faces", "text": "embedding"}
TINY = {"recursions": 1, "tcn_kernel": 3, "tcn_channels": {m: (8,) for m in MODS}}  # --model tiny
VAL_FRACTION = 0.1
REQUIRED_RATIO = 1.25
SAMPLE_SECONDS = 0.05


def write(root: Path, frames: int, video_frames: int) -> dict[str, list[str]]:
    from tests.synthetic import write_dataset

    n_videos = max(2, round(frames / video_frames))
    n_val = max(1, round(n_videos * VAL_FRACTION))
    return write_dataset(root, {"train": n_videos - n_val, "validation": n_val}, video_frames,
                         dims=PAPER_DIMS, seed=0, raw=True)


def _pss_kb(pid: int) -> int:
    """PSS of ``pid`` and its descendants (kB), 0 for processes that vanished."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            total += sum(_pss_kb(int(c)) for c in f.read().split())
    except (OSError, StopIteration, ValueError):
        pass
    return total


class TreePeak:
    """Samples the PSS of this process tree in a thread; ``peak_mb`` when stopped."""

    def __init__(self) -> None:
        import os

        self.pid, self.peak, self._stop = os.getpid(), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _pss_kb(self.pid))
            self._stop.wait(SAMPLE_SECONDS)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 1024


def child(args) -> dict:
    """One measurement in this (fresh) process; returns the figures."""
    import torch

    from fusion.data import open_videos

    torch.set_num_threads(args.threads)
    root = Path(args.data)
    ids = json.loads((root / "manifest" / "folds.json").read_text())["folds"][0]
    tree = TreePeak()
    t0 = time.perf_counter()
    if args.child == "frozen":
        from fusion.train import train_model
        from pipeline.core.params import FusionParams, TrainParams

        fusion = FusionParams()
        if args.model == "tiny":
            fusion = dataclasses.replace(fusion, **TINY)
        train = TrainParams(epochs=1, early_stop=0, device="cpu", threads=args.threads,
                            num_workers=args.workers)
        tr = open_videos(ids["train"], MODS, ("valence",), root)
        va = open_videos(ids["validation"], MODS, ("valence",), root)
        result = train_model(fusion, train, tr, va, ("valence",))
        extra = {"val_ccc": result.val_metrics["ccc_mean"]}
        data_s = None
    else:
        extra, data_s = finetune_epoch(ids["train"], root, args)
    wall = time.perf_counter() - t0
    pss = tree.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"path": args.child, "peak_rss_mb": rss, "peak_tree_pss_mb": pss, "wall_s": wall,
            "data_s": data_s, **extra}


def finetune_epoch(train_ids: list[str], root: Path, args) -> tuple[dict, float]:
    """One epoch of the fine-tuning inputs through a tiny stand-in backbone; (figures, data seconds)."""
    import torch

    from fusion.ccc import ccc_loss
    from fusion.data import WindowDataset, make_loader, open_videos
    from pipeline.core.params import FusionParams, TrainParams

    fusion, train = FusionParams(), TrainParams()
    videos = open_videos(train_ids, MODS, ("valence",), root, inputs=RAW)
    loader = make_loader(WindowDataset(videos, fusion.window, fusion.stride, inputs=RAW),
                         train.batch_size, shuffle=True, seed=0, num_workers=args.workers)
    torch.manual_seed(0)
    heads = torch.nn.ModuleDict({"audio": torch.nn.Linear(64, 8), "visual": torch.nn.Linear(3, 8),
                                 "text": torch.nn.Linear(PAPER_DIMS["text"], 8)})
    out = torch.nn.Linear(24, 1)
    opt = torch.optim.Adam(list(heads.parameters()) + list(out.parameters()), lr=1e-3)
    data_s, batches, t = 0.0, 0, time.perf_counter()
    for batch in loader:
        data_s += time.perf_counter() - t
        x = batch["features"]
        faces = x["visual"].float().div(255.0).mean((2, 3))  # [B, K, 48, 48, 3] -> [B, K, 3]
        logmel = x["audio"].mean(2)  # [B, K, 96, 64] -> [B, K, 64]
        h = torch.cat([heads["audio"](logmel), heads["visual"](faces * batch["face_present"][..., None]),
                       heads["text"](x["text"])], -1)  # [B, K, 24]
        loss = ccc_loss(out(h), batch["target"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        batches += 1
        t = time.perf_counter()
    return {"batches": batches, "windows": len(loader.dataset)}, data_s


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[30_000, 300_000], help="frames per dataset")
    p.add_argument("--video-frames", type=int, default=5000)
    p.add_argument("--paths", nargs="+", default=["frozen", "finetune"], choices=["frozen", "finetune"])
    p.add_argument("--model", default="tiny", choices=["tiny", "paper"], help="frozen path's model")
    p.add_argument("--workers", type=int, default=0, help="train.num_workers")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--keep", default="", help="write the datasets here and keep them (reused if present)")
    p.add_argument("--child", choices=["frozen", "finetune"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return

    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        for size in args.sizes:
            root = base / f"frames-{size}"
            if not (root / "manifest" / "folds.json").exists():
                t = time.perf_counter()
                write(root, size, args.video_frames)
                print(f"wrote {size} frames in {time.perf_counter() - t:.0f} s", file=sys.stderr)
            cache_mb = sum(f.stat().st_size for f in (root / "features").rglob("*.h5")) / 2**20
            for path in args.paths:
                cmd = [sys.executable, __file__, "--child", path, "--data", str(root), "--model",
                       args.model, "--workers", str(args.workers), "--threads", str(args.threads)]
                res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if res.returncode:
                    sys.exit(f"{path} at {size} frames failed:\n{res.stderr[-3000:]}")
                row = json.loads(res.stdout.strip().splitlines()[-1])
                row.update(size=size, cache_mb=cache_mb)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)

    print(f"machine: {platform.machine()}, {args.threads} torch threads, torch {torch.__version__}, "
          f"reader workers {args.workers}, frozen model {args.model}, videos of {args.video_frames} "
          f"frames\n")
    print("| path | frames | caches | peak RSS | peak PSS (tree) | wall |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['path']} | {r['size']:,} | {r['cache_mb']:,.0f} MB | {r['peak_rss_mb']:,.0f} MB | "
              f"{r['peak_tree_pss_mb']:,.0f} MB | {r['wall_s']:.0f} s |")
    for path in args.paths:
        sel = sorted((r for r in rows if r["path"] == path), key=lambda r: r["size"])
        if len(sel) >= 2:
            ratio = sel[-1]["peak_rss_mb"] / sel[0]["peak_rss_mb"]
            ok = ratio <= REQUIRED_RATIO
            print(f"\n{path}: peak RSS at {sel[-1]['size']:,} / at {sel[0]['size']:,} frames = {ratio:.3f} "
                  f"(requirement <= {REQUIRED_RATIO}: {'met' if ok else 'NOT met'})")


if __name__ == "__main__":
    main()
