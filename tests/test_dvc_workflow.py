"""The real DVC workflow on a tiny config: repro, no-op repro, an experiment, and a team cache.

The project's code, dvc.yaml, conf/ and .dvc/config are copied into a temporary git repository
with a tiny generated Aff-Wild2-style dataset (tests/media_fixtures.py, plus word transcripts) and a
tiny params.yaml; DVC runs isolated from the machine's config (DVC_NO_ANALYTICS,
DVC_GLOBAL_CONFIG_DIR, DVC_SYSTEM_CONFIG_DIR). Checked, in order:

1. ``dvc repro`` runs every stage and writes the report's metrics;
2. a second ``dvc repro`` runs nothing;
3. a local-directory remote: ``dvc push --run-cache`` from this clone, then in a fresh ``git clone``
   ``dvc repro --pull`` recomputes nothing and restores the same metrics;
4. ``dvc exp run -S fusion.recursions=1`` (through the Hydra composition) re-runs only train and
   report, and ``dvc exp show`` lists the experiment's metrics;
5. a ``[text]`` experiment extracts no audio or visual features (their stages write only
   ``unused.json``; the text features are not recomputed), and switching the modalities back on brings
   the caches back (here from the run-cache, since that configuration ran in step 4).

The fast checks at the end verify the presets: composing conf/ gives params.yaml exactly, and both
preset files set the same keys (so switching presets back and forth is exact).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.params import params_from_dict
from tests.media_fixtures import make_affwild2

ROOT = Path(__file__).resolve().parents[1]
COPY = ("pipeline", "stages", "fusion", "conf", "dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config")
N_FRAMES = 20
FPS = 10.0
WORDS = ("good", "bad", "happy", "calm", "angry", "fine")

TINY_PRESET = {  # the dataset-dependent keys (same set as conf/dataset/*.yaml)
    "data": {"root": "data/demo", "layout": "affwild2", "shards": 2, "shard_ids": [0, 1], "folds": 2},
    "asr": {"engine": "transcripts"},
    "fusion": {"window": 8, "stride": 4, "tcn_channels": {m: [4] for m in ("audio", "visual", "text")}},
    "train": {"folds": [0], "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0, "epochs": 1, "early_stop": 0},
}
TINY_REST = {
    "fusion": {"recursions": 2, "tcn_kernel": 3, "head_hidden": 4},
    "train": {"device": "cpu", "threads": 1},
    "report": {"plot_videos": 1},
}


def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def preset_keys(d: dict, prefix: str = "") -> set[str]:
    """Dotted leaf keys of a preset (``fusion.tcn_channels`` counts as one value)."""
    keys = set()
    for k, v in d.items():
        if isinstance(v, dict) and k != "tcn_channels":
            keys |= preset_keys(v, f"{prefix}{k}.")
        else:
            keys.add(f"{prefix}{k}")
    return keys


def project_preset_keys(name: str) -> set[str]:
    return preset_keys(yaml.safe_load((ROOT / "conf" / "dataset" / f"{name}.yaml").read_text()))


def dvc_env(tmp: Path) -> dict:
    env = dict(os.environ)
    for var in ("DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR", "DVC_SITE_CACHE_DIR"):
        (tmp / var).mkdir(exist_ok=True)
        env[var] = str(tmp / var)
    env["DVC_NO_ANALYTICS"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # stages' `python`
    env["PYTHONPATH"] = ""  # the copied project is imported from the repository root (cwd)
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"] = "rjcma test"
        env[f"GIT_{who}_EMAIL"] = "test@example.invalid"
    return env


def run(args: list[str], cwd: Path, env: dict) -> str:
    """Run a command; its combined output, or a failure that shows it."""
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{out[-6000:]}"
    return out


def dvc(*args: str, cwd: Path, env: dict) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd, env)


def git(*args: str, cwd: Path, env: dict) -> str:
    return run(["git", *args], cwd, env)


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def write_transcripts(root: Path) -> None:
    """Word-level transcripts (the `transcripts` ASR engine) for every source video of the dataset."""
    folder = root / "transcripts"
    folder.mkdir(parents=True, exist_ok=True)
    for i, video in enumerate(sorted((root / "videos").iterdir())):
        words = [{"word": WORDS[(i + j) % len(WORDS)], "start": 0.3 * j, "end": 0.3 * j + 0.25}
                 for j in range(int(N_FRAMES / FPS / 0.3))]
        (folder / f"{video.stem}.json").write_text(json.dumps(words))


def make_repo(repo: Path, env: dict) -> None:
    """The project's pipeline in a fresh git repo with a tiny dataset and tiny params."""
    repo.mkdir()
    for item in COPY:
        src, dst = ROOT / item, repo / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    dataset = make_affwild2(repo / "data" / "demo", n_frames=N_FRAMES, fps=FPS)
    write_transcripts(dataset)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = merge(merge(base, TINY_PRESET), TINY_REST)
    params_from_dict(params)  # valid for the loader
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the tiny preset replaces the demo preset, so `dvc exp run` composes the same params
    preset = "# @package _global_\n" + yaml.safe_dump(TINY_PRESET)
    (repo / "conf" / "dataset" / "demo.yaml").write_text(preset)
    git("init", "-q", cwd=repo, env=env)
    git("add", "-A", cwd=repo, env=env)
    git("commit", "-qm", "tiny project", cwd=repo, env=env)


@pytest.mark.slow
def test_repro_noop_team_cache_and_experiment(tmp_path):
    env = dvc_env(tmp_path)
    repo = tmp_path / "alice"
    make_repo(repo, env)
    all_stages = {"uses", "manifest", "train@0-valence", "train@0-arousal", "report"} | {
        f"{s}@{k}" for s in ("extract_audio", "transcribe", "punctuate", "text_features",
                             "audio_features", "visual_features") for k in (0, 1)}

    # 1. everything runs
    out = dvc("repro", cwd=repo, env=env)
    assert stages_run(out) == all_stages
    metrics = json.loads((repo / "results" / "report" / "metrics.json").read_text())
    assert set(metrics["ccc"]) == {"valence", "arousal", "mean"}
    assert (repo / "results" / "report" / "test" / "test1.txt").read_text().startswith("valence,arousal\n")

    # 2. nothing to do
    out = dvc("repro", cwd=repo, env=env)
    assert stages_run(out) == set() and "up to date" in out
    git("add", "-A", cwd=repo, env=env)
    git("commit", "-qm", "pipeline run", cwd=repo, env=env)

    # 3. team cache: push outputs + run-cache to a local-directory remote, reproduce in a fresh clone
    remote = tmp_path / "remote"
    dvc("remote", "add", "-d", "shared", str(remote), cwd=repo, env=env)
    git("commit", "-qam", "shared remote", cwd=repo, env=env)
    dvc("push", "--run-cache", cwd=repo, env=env)
    clone = tmp_path / "bob"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path, env=env)
    out = dvc("repro", "--pull", cwd=clone, env=env)
    assert stages_run(out) == set(), out
    assert json.loads((clone / "results" / "report" / "metrics.json").read_text()) == metrics
    dvc("status", cwd=clone, env=env)
    git("diff", "--exit-code", "dvc.lock", cwd=clone, env=env)

    # 4. an experiment on the fusion model re-runs only training and the report
    out = dvc("exp", "run", "-S", "fusion.recursions=1", cwd=repo, env=env)
    assert stages_run(out) == {"train@0-valence", "train@0-arousal", "report"}, out
    assert yaml.safe_load((repo / "params.yaml").read_text())["fusion"]["recursions"] == 1
    shown = json.loads(dvc("exp", "show", "--json", cwd=repo, env=env))
    text = json.dumps(shown)
    assert "ccc" in text and '"recursions": 1' in text

    # 5. a text-only run pays for text only; switching back on restores the other modalities
    unused = {"extract_audio": "interim/wav", "audio_features": "features/audio",
              "visual_features": "features/visual"}
    out = dvc("exp", "run", "-S", "fusion.modalities=[text]", cwd=repo, env=env)
    # transcribe (asr.engine: transcripts) re-converts the user's transcripts since its wav folder
    # changed; its output is the same, so punctuate and text_features do not re-run
    assert stages_run(out) == {"uses", "train@0-valence", "train@0-arousal", "report"} | {
        f"{s}@{k}" for s in (*unused, "transcribe") for k in (0, 1)}, out
    assert out.count("nothing to extract") == 6, out
    for folder in unused.values():
        files = sorted(p.relative_to(repo / "data" / folder).as_posix()
                       for p in (repo / "data" / folder).rglob("*") if p.is_file())
        assert files == ["0/unused.json", "1/unused.json"], (folder, files)
    assert list((repo / "data" / "features" / "text").rglob("*.h5"))
    out = dvc("exp", "run", "-S", "fusion.modalities=[audio,visual,text]", cwd=repo, env=env)
    assert stages_run(out) == set(), out  # every stage of that configuration is in the run-cache
    for modality in ("audio", "visual"):
        assert len(list((repo / "data" / "features" / modality).rglob("*.h5"))) == 6


def test_presets_set_the_same_keys():
    demo, paper = project_preset_keys("demo"), project_preset_keys("affwild2")
    assert demo == paper
    assert preset_keys(TINY_PRESET) <= demo  # the workflow test's tiny preset overrides a subset


@pytest.mark.parametrize("preset", ["demo", "affwild2"])
def test_composing_a_preset_gives_valid_params(tmp_path, preset, monkeypatch):
    """What `dvc exp run -S dataset=<preset>` writes, composed with DVC's own Hydra code."""
    from dvc.utils.hydra import compose_and_dump

    monkeypatch.chdir(tmp_path)  # from any working directory (conf/params.yaml links the base)
    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(ROOT / "conf"), None, "config", "", [f"dataset={preset}"])
    composed = yaml.safe_load(out.read_text())
    params = params_from_dict(composed, str(out))
    if preset == "demo":  # params.yaml IS the demo preset: composing changes nothing
        assert composed == yaml.safe_load((ROOT / "params.yaml").read_text())
    else:
        assert params.fusion.window == 300 and params.fusion.stride == 200
        assert params.fusion.recursions == 3
        assert params.data.shards == 32 and params.train.folds == (0, 1, 2, 3, 4, 5)
        assert params.asr.engine == "vosk" and "en-us-0.22" in params.asr.model
        assert "bert-base-uncased" in params.text.bert
        assert params.visual.backbone == "ir50" and params.audio.vggish_weights
        assert (params.train.lr, params.train.weight_decay, params.train.batch_size) == (1e-5, 1e-3, 12)


def test_the_hydra_composition_is_enabled_for_the_project():
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"\[hydra\]\s+enabled = true", config)
    base = ROOT / "conf" / "params.yaml"  # the composition's base is the project's params.yaml
    assert base.is_symlink() and base.resolve() == (ROOT / "params.yaml").resolve()
