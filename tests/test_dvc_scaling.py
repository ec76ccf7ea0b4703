"""Scale-out with DVC's own engines (docs/scaling.md), for real on the tiny project of
tests/test_dvc_workflow.py:

1. feature shards over several workers: docs/slurm/features.sbatch runs as array tasks 0 and 1
   **at the same time**, each in its own clone (DVC's repo lock allows one ``dvc repro`` per
   workspace), all sharing one cache directory (run-cache included); then in a third clone
   ``dvc repro`` of every feature stage runs nothing, and the whole pipeline runs only the
   training matrix and the report;
2. the experiment grid through DVC's queue: two queued experiments, two queue workers started one
   by one with their own ``CUDA_VISIBLE_DEVICES`` (how a lab pins one worker per GPU), both
   experiments complete and ``dvc exp show`` lists both with their metrics.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_dvc_workflow import ROOT, dvc, dvc_env, git, make_repo, stages_run

SHARD_STAGES = ("extract_audio", "transcribe", "punctuate", "text_features", "audio_features",
                "visual_features")
FEATURE_GROUPS = ("text_features", "audio_features", "visual_features")
SBATCH = ROOT / "docs" / "slurm" / "features.sbatch"
QUEUE_TIMEOUT = 420  # s for the two queued experiments on a busy 2-core machine


def clone(origin: Path, dest: Path, cache: Path, env: dict) -> Path:
    """A worker's own workspace: a git clone whose DVC cache is the shared directory."""
    git("clone", "-q", str(origin), str(dest), cwd=origin.parent, env=env)
    dvc("cache", "dir", "--local", str(cache), cwd=dest, env=env)
    return dest


def shard_stages_in_dvc_yaml() -> list[str]:
    """The stages of dvc.yaml whose matrix runs over the shards, in file (= pipeline) order."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return [name for name, st in stages.items() if "shard" in (st.get("matrix") or {})]


def test_the_slurm_script_lists_every_shard_stage_in_order():
    m = re.search(r'^SHARD_STAGES="([^"]+)"', SBATCH.read_text(), re.M)
    assert m and m.group(1).split() == shard_stages_in_dvc_yaml() == list(SHARD_STAGES)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """The project after two concurrent shard workers (docs/slurm/features.sbatch as array tasks 0
    and 1, each in its own clone) sharing one cache."""
    tmp = tmp_path_factory.mktemp("scale")
    env = dvc_env(tmp)
    origin = tmp / "origin"
    make_repo(origin, env)
    cache = tmp / "shared-cache"
    dvc("cache", "dir", "--local", str(cache), cwd=origin, env=env)
    dvc("repro", "manifest", cwd=origin, env=env)  # once, before the array
    git("add", "dvc.lock", cwd=origin, env=env)
    git("commit", "-qm", "manifest", cwd=origin, env=env)
    task_env = {**env, "RJCMA_REPO": str(origin), "RJCMA_CACHE": str(cache),
                "RJCMA_SCRATCH": str(tmp), "SLURM_JOB_ID": "7"}
    procs = [subprocess.Popen(["bash", str(SBATCH)], cwd=tmp, env={**task_env, "SLURM_ARRAY_TASK_ID": str(k)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k in (0, 1)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-6000:]
    return {"tmp": tmp, "env": env, "origin": origin, "cache": cache, "outputs": outputs}


@pytest.fixture(scope="module")
def baseline(sharded):
    """A third clone on the same cache: the feature stages, then the whole pipeline, committed."""
    env = sharded["env"]
    third = clone(sharded["origin"], sharded["tmp"] / "third", sharded["cache"], env)
    features = dvc("repro", *FEATURE_GROUPS, cwd=third, env=env)
    whole = dvc("repro", cwd=third, env=env)
    git("add", "dvc.lock", cwd=third, env=env)
    git("commit", "-qm", "baseline run", cwd=third, env=env)
    return {"repo": third, "features": features, "whole": whole}


@pytest.mark.slow
def test_concurrent_shard_workers_then_repro_runs_nothing_new(sharded, baseline):
    for k, out in enumerate(sharded["outputs"]):  # each worker ran exactly its own shard's stages
        # (and `uses`, which reads params only: run or restored in each clone)
        assert stages_run(out) - {"uses"} == {f"{s}@{k}" for s in SHARD_STAGES}, out
        assert f"shard {k}: done" in out
    out = baseline["features"]
    assert stages_run(out) == set(), out
    for stage in [f"{s}@{k}" for s in SHARD_STAGES for k in (0, 1)]:  # restored, not recomputed
        assert f"Stage '{stage}' is cached - skipping run" in out, out
    out = baseline["whole"]  # the whole pipeline: only what no worker ran
    assert stages_run(out) == {"train@0-valence", "train@0-arousal", "report"}, out
    assert (baseline["repo"] / "results" / "report" / "metrics.json").is_file()


def queue_status(repo: Path, env: dict) -> str:
    return dvc("queue", "status", cwd=repo, env=env)


def wait_for(predicate, timeout: float, what: str, repo: Path, env: dict) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = queue_status(repo, env)
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{status}")
        time.sleep(2)


def worker_gpus(repo: Path) -> set[str] | None:
    """CUDA_VISIBLE_DEVICES of every live queue worker of ``repo`` (Linux /proc; None elsewhere)."""
    if not Path("/proc/self/environ").exists():
        return None
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"queue-worker" not in cmd or not str((proc / "cwd").resolve()).startswith(str(repo)):
                continue
            env = dict(kv.decode().split("=", 1) for kv in (proc / "environ").read_bytes().split(b"\0")
                       if b"=" in kv)
        except (OSError, ValueError):
            continue
        found.add(env.get("CUDA_VISIBLE_DEVICES", ""))
    return found


def running(status: str) -> int:
    return len(re.findall(r"\bRunning\b", status))


@pytest.mark.slow
def test_queued_experiment_grid_runs_on_pinned_workers(baseline, sharded):
    env, lab = sharded["env"], baseline["repo"]
    for n in (1, 2):  # one target keeps it short; the grid is fold x target inside each experiment
        dvc("exp", "run", "--queue", "-n", f"rec{n}", "-S", f"fusion.recursions={n}",
            "-S", "train.targets=[valence]", cwd=lab, env=env)
    assert len(re.findall(r"\bQueued\b", queue_status(lab, env))) == 2
    gpus: set[str] = set()
    try:
        for gpu in (0, 1):  # worker gpu+1 inherits this CUDA_VISIBLE_DEVICES (docs/scaling.md)
            with open(lab.parent / f"queue-start-{gpu}.log", "w") as log:  # the worker keeps it open
                subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", str(gpu + 1)],
                               cwd=lab, env={**env, "CUDA_VISIBLE_DEVICES": str(gpu)}, check=True,
                               stdout=log, stderr=subprocess.STDOUT)
            # the next worker only once this one has taken an experiment (docs/scaling.md)
            wait_for(lambda s, g=gpu: running(s) >= g + 1 or "Success" in s, 120,
                     f"queue worker {gpu + 1} to take an experiment", lab, env)
            gpus |= worker_gpus(lab) or set()
        status = wait_for(lambda s: not re.search(r"\b(Queued|Running)\b", s), QUEUE_TIMEOUT,
                          "the queued experiments", lab, env)
        assert len(re.findall(r"\bSuccess\b", status)) == 2, status
        if worker_gpus(lab) is not None:  # Linux: each worker saw its own GPU
            assert gpus == {"0", "1"}, gpus
        shown = json.loads(dvc("exp", "show", "--json", cwd=lab, env=env))
        exps = {r["name"]: r for rev in shown for e in (rev.get("experiments") or [])
                for r in e.get("revs", [])}
        assert {"rec1", "rec2"} <= set(exps), json.dumps(shown)[:3000]
        for n in (1, 2):
            data = exps[f"rec{n}"]["data"]
            assert data["params"]["params.yaml"]["data"]["fusion"]["recursions"] == n
            metrics = data["metrics"]["results/report/metrics.json"]["data"]
            assert set(metrics["ccc"]) == {"valence", "mean"}
    finally:
        subprocess.run([sys.executable, "-m", "dvc", "queue", "stop", "--kill"], cwd=lab, env=env,
                       capture_output=True)
        deadline = time.monotonic() + 60
        while worker_gpus(lab) and time.monotonic() < deadline:  # leave no worker behind
            time.sleep(1)
        assert not worker_gpus(lab), "queue workers still running"
