"""Crash safety with the real stages in subprocesses: kill -9 at a random moment of a feature stage,
of train and of report, then a rerun gives outputs byte-identical to an uninterrupted run and leaves
no temporary file or folder; predict takes only finished runs; files and folders get the umask's
mode; the temporaries' own rules (pipeline/core/atomic.py)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.core.atomic import atomic_dir, atomic_path, clean_stale, is_temp, temp_name, write_text
from tests.synthetic import write_dataset

ROOT = Path(__file__).resolve().parents[1]
RNG = random.Random()  # a random kill moment per run; the seed is in every failure message
SEED = RNG.randrange(1 << 30)
RNG.seed(SEED)

TINY = {
    "fusion": {"window": 16, "stride": 8, "tcn_channels": {"audio": [8], "visual": [8], "text": [8]},
               "tcn_kernel": 3, "head_hidden": 8},
    "train": {"folds": [0], "targets": ["valence"], "epochs": 2, "batch_size": 4, "lr": 1e-3,
              "warmup_epochs": 0, "device": "cpu", "threads": 1},
    "report": {"plot_videos": 1},
}


def tree(top: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under ``top``, by relative path."""
    return {p.relative_to(top).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(top.rglob("*"))}


def temporaries(top: Path) -> list[str]:
    return [p.relative_to(top).as_posix() for p in top.rglob("*") if p.name.startswith(".")]


def run(argv: list[str], cwd: Path) -> float:
    """Run ``python -m <argv>`` to completion; returns its wall time."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", *argv], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - t


def kill_at_random(argv: list[str], cwd: Path, seconds: float) -> float:
    """Start ``python -m <argv>``, SIGKILL it after a random delay in [0, ``seconds``]."""
    delay = RNG.uniform(0.0, seconds)
    proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return delay


def interrupted_then_rerun(argv: list[str], reference: Path, copy: Path, out: str,
                           plant: str) -> None:
    """Run ``python -m <argv>`` in folder ``reference`` uninterrupted and in folder ``copy`` killed
    at a random moment, add a stale temporary ``plant`` there (as a kill mid-write leaves; a name
    ending in / is a folder), rerun it there: the ``out`` trees must be equal, with no temporaries."""
    seconds = run(argv, reference)
    delay = kill_at_random(argv, copy, seconds)
    stale = copy / plant
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.mkdir(exist_ok=True) if plant.endswith("/") else stale.write_bytes(b"half a file")
    run(argv, copy)
    why = f"{argv[0]} killed after {delay:.2f} s of {seconds:.2f} s (random seed {SEED})"
    assert tree(copy / out) == tree(reference / out), why
    assert temporaries(copy) == [], why


ARGS = ["--params", "params.yaml", "--data", "data"]  # relative to the folder a command runs in


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A synthetic dataset (features, labels, one fold) and the tiny params; returns the folder."""
    top = tmp_path_factory.mktemp("synthetic")
    write_dataset(top / "data", {"train": 4, "validation": 2, "test": 1}, [40, 56], seed=3)
    (top / "params.yaml").write_text(yaml.safe_dump(TINY))
    return top


def test_kill_a_feature_stage_then_rerun(affwild2_root, tmp_path):
    from stages import manifest

    tops = [tmp_path / "reference", tmp_path / "killed"]
    for top in tops:
        top.mkdir()
        data = {"root": str(affwild2_root), "shards": 1, "shard_ids": [0], "folds": 2}
        (top / "params.yaml").write_text(yaml.safe_dump({"data": data}))
        assert manifest.main(["--params", str(top / "params.yaml"), "--data", str(top / "data")]) == 0
    interrupted_then_rerun(["stages.visual_features", "--shard", "0", *ARGS], *tops,
                           out="data/features/visual",
                           plant="data/features/visual/0/.tmp-0123abcd-train1.h5")
    assert sorted(tree(tops[1] / "data/features/visual/0")) == [
        "conditions.json", "duo_left.h5", "duo_right.h5", "test1.h5", "train1.h5", "train2.h5", "val1.h5"]


def test_kill_train_then_report_then_rerun(synthetic, tmp_path):
    tops = [tmp_path / "reference", tmp_path / "killed"]
    for top in tops:
        shutil.copytree(synthetic, top)
    interrupted_then_rerun(["stages.train", "--fold", "0", "--target", "valence", *ARGS], *tops,
                           out="results", plant="results/train/.tmp-0123abcd-0-valence/")
    assert sorted(p.name for p in (tops[1] / "results" / "train").iterdir()) == ["0-valence"]
    write_text(tops[1] / "results/report/metrics.json", "{}")  # an older report, to be replaced
    interrupted_then_rerun(["stages.report", *ARGS], *tops, out="results",
                           plant="results/.tmp-0123abcd-report/")
    assert sorted(p.name for p in (tops[1] / "results").iterdir()) == ["report", "train"]


def test_predict_takes_only_finished_runs(synthetic, tmp_path, caplog):
    from rjcma.predict import find_checkpoints
    from stages import train

    models = tmp_path / "train"
    assert train.main(["--fold", "0", "--target", "valence", "--params", str(synthetic / "params.yaml"),
                       "--data", str(synthetic / "data"), "--out", str(tmp_path)]) == 0
    for unfinished in (".tmp-0123abcd-0-arousal", ".0-arousal.p7u_dkwd"):  # this and the old naming
        shutil.copytree(models / "0-valence", models / unfinished)
    with caplog.at_level("INFO"):
        assert find_checkpoints(models) == [models / "0-valence" / "checkpoint.pt"]
    assert "skipped 2 unfinished run(s)" in caplog.text
    with pytest.raises(FileNotFoundError, match="still being written"):
        find_checkpoints(models / ".tmp-0123abcd-0-arousal")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_and_folders_get_the_umask_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        with atomic_dir(tmp_path / "run") as tmp:
            write_text(tmp / "metrics.json", "{}")
        with atomic_path(tmp_path / "x.h5") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "run" / "metrics.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "x.h5").stat().st_mode) == 0o666 & ~umask


def test_temporaries_rules(tmp_path):
    target = tmp_path / "a.wav"
    tmp = temp_name(target)
    assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-") and tmp.name.endswith("-a.wav")
    assert is_temp(tmp, "a.wav") and not is_temp(tmp, "a") and not is_temp(tmp, "wav")
    for name in (tmp.name, temp_name(tmp_path / "a").name, temp_name(tmp_path / "b.wav.json").name):
        (tmp_path / name).write_text("stale")
    (tmp_path / ".hidden").write_text("not ours")
    assert clean_stale(tmp_path, "a.wav") == [tmp]  # only this target's
    assert len(clean_stale(tmp_path)) == 2 and sorted(p.name for p in tmp_path.iterdir()) == [".hidden"]
    # a failure inside leaves the old target and no temporary
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as t:
            t.write_text("new")
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "run") as d:
            (d / "f").write_text("x")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "a.wav"]
    assert ".tmp-*" in (ROOT / ".dvcignore").read_text().split()  # a leftover never changes a hash
