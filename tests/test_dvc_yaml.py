"""dvc.yaml stays honest: every stage declares exactly the params its code reads and every project
module its code imports (the analysis lives in :mod:`stages.deps`; ``python -m stages.deps`` prints
what each stage should declare). The same checks run on a doctored copy of the project to show
they fail.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.core.params import ParamsError, load_params, params_from_dict
from stages.deps import (
    PACKAGES,
    ROOT,
    check_stage,
    load_stages,
    module_closure,
    module_path,
    normalise,
    reachable_reads,
    stage_module,
)


def check_report_stage(root: Path) -> list[str]:
    return check_stage("report", load_stages(root)["report"], root)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

STAGES = load_stages(ROOT)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_declares_exactly_its_code_and_params(name):
    assert check_stage(name, STAGES[name], ROOT) == []


def test_analysis_sees_key_reads_section_reads_and_imports(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "stages" / "__init__.py").write_text('"""Stages."""\n')
    (tmp_path / "pipeline" / "__init__.py").write_text("")
    (tmp_path / "pipeline" / "helper.py").write_text(
        "from pipeline.core.params import VisualParams, to_dict\n\n"
        "def f(cfg: VisualParams):\n    return cfg.size\n\n"
        "def unused(params):\n    return to_dict(params)  # never called: reads nothing\n\n"
        "def g(params, x: int):\n    return params.text.gap, x\n")
    (tmp_path / "pipeline" / "core").mkdir()
    (tmp_path / "pipeline" / "core" / "__init__.py").write_text("")
    (tmp_path / "pipeline" / "core" / "params.py").write_text("def load_params(path):\n    return path\n")
    (tmp_path / "stages" / "demo.py").write_text(
        "import numpy\nimport pipeline.helper\nfrom pipeline import helper\n"
        "from pipeline.core.params import load_params\n\n"
        "def main(args):\n    p = load_params(args.params)\n    x = p.fusion.window + p.train.lr\n"
        "    cfg = p.audio\n    pipeline.helper.g(p, 1)\n"
        "    return helper.f(p.visual), cfg, x, args.params\n")
    files = module_closure("stages.demo", tmp_path)
    assert {f.relative_to(tmp_path).as_posix() for f in files} == {
        "stages/demo.py", "pipeline/helper.py", "pipeline/core/params.py"}  # an empty __init__ is no code
    reads = normalise(reachable_reads("stages.demo", tmp_path))
    assert reads == {"fusion.window", "train.lr", "audio", "visual", "text.gap"}


def test_every_stage_runs_a_stage_module_with_help():
    for name, stage in STAGES.items():
        module = stage_module(name, stage)
        assert module_path(module, ROOT) is not None, f"{name}: {module} does not exist"


def test_outputs_are_cached_directories_without_persist():
    for name, stage in STAGES.items():
        outs = stage.get("outs", [])
        assert outs, f"stage {name} has no outputs"
        for out in outs:
            path, opts = (out, {}) if isinstance(out, str) else next(iter(out.items()))
            plain = re.sub(r"\$\{[^}]*\}", "x", path)
            assert not Path(plain).suffix, f"stage {name}: output {path} should be a directory"
            assert opts.get("cache", True) and not opts.get("persist", False), (name, path)
        assert not stage.get("metrics") and not stage.get("plots"), (
            f"stage {name}: metrics/plots belong inside its cached output dir (top-level metrics:)")


def test_shard_stages_read_only_their_shard_list():
    for name, stage in STAGES.items():
        if "shard" not in stage.get("matrix", {}):
            continue
        assert stage["matrix"]["shard"] == "${data.shard_ids}", name
        assert "--shard ${item.shard}" in stage["cmd"], name
        data_deps = [d for d in stage["deps"] if not d.endswith(".py")]
        assert "data/manifest/shards/${item.shard}.json" in data_deps, name
        # its chain's usage verdict (pipeline/core/uses.py): one file, never the params behind it
        uses = [d for d in data_deps if d.startswith("data/uses/")]
        assert len(uses) == 1 and re.fullmatch(r"data/uses/(wav|audio|visual|text)\.json", uses[0]), name
        assert not {"fusion", "fusion.modalities"} & set(stage.get("params", [])), name
        for dep in set(data_deps) - set(uses):  # never a whole manifest or another shard's folder
            assert dep.endswith("${item.shard}") or dep.endswith("${item.shard}.json"), (name, dep)
        for out in stage["outs"]:
            assert out.endswith("/${item.shard}"), (name, out)


def test_top_level_metrics_and_plots_live_in_cached_outputs():
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    outs = [o for s in STAGES.values() for o in s["outs"]]
    paths = list(doc["metrics"]) + [next(iter(p)) if isinstance(p, dict) else p for p in doc["plots"]]
    for path in paths:
        assert any(path.startswith(o.rstrip("/") + "/") for o in outs), f"{path} is in no stage output"


def test_params_yaml_drives_the_matrices():
    params = load_params(ROOT / "params.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw["data"]["shard_ids"] == list(params.data.shard_ids) == list(range(params.data.shards))
    assert STAGES["train"]["matrix"] == {"fold": "${train.folds}", "target": "${train.targets}"}


def test_shard_ids_must_match_the_shard_count():
    assert params_from_dict({"data": {"shards": 3}}).data.shard_ids == (0, 1, 2)  # derived if absent
    with pytest.raises(ParamsError, match=r"p.yaml: data: shard_ids \[0, 1\].*shard_ids: \[0, 1, 2\]"):
        params_from_dict({"data": {"shards": 3, "shard_ids": [0, 1]}}, "p.yaml")


def _doctored_copy(tmp_path: Path) -> Path:
    for item in ("dvc.yaml", *PACKAGES):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, tmp_path / item)
    return tmp_path


def test_an_undeclared_param_read_fails_the_check(tmp_path):
    root = _doctored_copy(tmp_path)
    assert check_report_stage(root) == []
    report = root / "stages" / "report.py"
    doctored = "\n\ndef _doctored(params):\n    return params.audio.sample_rate\n"
    report.write_text(report.read_text() + doctored)
    problems = check_report_stage(root)
    assert any("report" in p and "audio.sample_rate" in p and "not declared" in p for p in problems)


def test_an_undeclared_import_fails_the_check(tmp_path):
    root = _doctored_copy(tmp_path)
    (root / "pipeline" / "doctored.py").write_text('"""A new helper."""\nVALUE = 1\n')
    report = root / "stages" / "report.py"
    report.write_text(report.read_text() + "\n\nfrom pipeline import doctored  # noqa: E402\n")
    problems = check_report_stage(root)
    assert any("report" in p and "pipeline/doctored.py" in p and "not in deps" in p for p in problems)


def test_a_stale_declaration_fails_the_check(tmp_path):
    root = _doctored_copy(tmp_path)
    doc = yaml.safe_load((root / "dvc.yaml").read_text())
    doc["stages"]["report"]["params"].append("asr")
    (root / "dvc.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    assert any("report" in p and "'asr'" in p and "never reads" in p for p in check_report_stage(root))


def test_stages_reading_a_list_param_depend_on_the_lists_folder():
    """data.trial_order / report.submission_list name files in conf/lists: DVC has no optional
    dependency (an unset "" would be an empty path), so the stages reading them depend on the
    folder, which always exists; without it in deps the check fails."""
    for name in ("manifest", "report"):
        stage = dict(STAGES[name])
        assert "conf/lists" in stage["deps"] and (ROOT / "conf" / "lists").is_dir()
        stage["deps"] = [d for d in stage["deps"] if d != "conf/lists"]
        assert any("without conf/lists in deps" in p for p in check_stage(name, stage, ROOT)), name
    assert not any("conf/lists" in d for d in STAGES["train"]["deps"])  # train reads no list
