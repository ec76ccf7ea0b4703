"""The demo through DVC from a fresh clone: wall times, determinism, CCC, and the ablation table.

    python bench/dvc_demo.py [--out bench/out/dvc_demo] [--no-ablation]

Copies the working tree (git's tracked and untracked, non-ignored files; no caches, no results)
into ``<out>/a``, commits it in a new git repository and measures:

1. ``dvc repro`` from scratch (the demo end to end), then a no-op ``dvc repro``;
2. a ``git clone`` of that into ``<out>/b``, ``dvc repro`` from scratch again, and whether
   ``dvc.lock`` is byte-identical (``git diff --exit-code dvc.lock``): deterministic outputs;
3. unless ``--no-ablation``: ``dvc exp run`` for ``fusion.recursions`` = 1..4 and A+V (vs A+V+T),
   each re-running only train and report, and prints the ``dvc exp show`` metrics as a table.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = [(f"rec{n}", [f"fusion.recursions={n}"]) for n in (1, 2, 3, 4)] + [
    ("av", ["fusion.recursions=3", "fusion.modalities=[audio,visual]"])]


def env() -> dict:
    e = dict(os.environ, DVC_NO_ANALYTICS="1")
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e['PATH']}"
    for who in ("AUTHOR", "COMMITTER"):
        e.setdefault(f"GIT_{who}_NAME", "rjcma bench")
        e.setdefault(f"GIT_{who}_EMAIL", "bench@example.invalid")
    return e


def sh(args: list[str], cwd: Path) -> tuple[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{' '.join(args)} failed in {cwd}:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return proc.stdout + proc.stderr, seconds


def dvc(*args: str, cwd: Path) -> tuple[str, float]:
    return sh([sys.executable, "-m", "dvc", *args], cwd)


def copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file() or src.is_symlink():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f, follow_symlinks=False)  # conf/params.yaml stays a link


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "dvc_demo")
    p.add_argument("--no-ablation", action="store_true", help="skip the dvc exp runs")
    args = p.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    a, b = args.out / "a", args.out / "b"
    a.mkdir(parents=True)
    copy_tree(a)
    sh(["git", "init", "-q"], a)
    sh(["git", "add", "-A"], a)
    sh(["git", "commit", "-qm", "bench"], a)

    _, t_repro = dvc("repro", cwd=a)
    out, t_noop = dvc("repro", cwd=a)
    assert "Running stage" not in out, out
    metrics, _ = dvc("metrics", "show", "--json", cwd=a)
    sh(["git", "add", "-A"], a)
    sh(["git", "commit", "-qm", "run"], a)
    sh(["git", "clone", "-q", str(a), str(b)], args.out)
    _, t_clone = dvc("repro", cwd=b)
    same = subprocess.run(["git", "diff", "--quiet", "dvc.lock"], cwd=b).returncode == 0
    print(f"dvc repro (fresh): {t_repro:.1f} s; no-op: {t_noop:.1f} s; "
          f"second clone from scratch: {t_clone:.1f} s; dvc.lock identical: {same}")
    print(f"metrics: {metrics.strip()}")
    if args.no_ablation:
        return
    for name, sets in EXPERIMENTS:
        out, t = dvc("exp", "run", "-n", name, *[x for s in sets for x in ("-S", s)], cwd=a)
        ran = sorted(set(re.findall(r"Running stage '([^']+)'", out)))
        print(f"exp {name}: {t:.1f} s, ran {ran or 'nothing (run-cache)'}")
    table, _ = dvc("exp", "show", "--csv", cwd=a)
    print("| experiment | recursions | modalities | valence CCC | arousal CCC | mean |")
    print("|---|---|---|---|---|---|")
    for r in csv.DictReader(io.StringIO(table)):
        if r["Experiment"] in {n for n, _ in EXPERIMENTS}:
            ccc = " | ".join(f"{float(r[f'ccc.{k}']):.3f}" for k in ("valence", "arousal", "mean"))
            print(f"| {r['Experiment']} | {r['fusion.recursions']} | {r['fusion.modalities']} | {ccc} |")


if __name__ == "__main__":
    main()
