"""dvc.yaml stays honest: every stage declares exactly the params its code reads and every project
module its code imports.

For each stage, the module it runs (``python -m stages.<name>``) and every project module that one
imports (transitively, found by parsing the source) must be listed in ``deps``; the params sections
and keys those modules read must equal the stage's ``params:``. A param is "read" when the code
accesses ``params.<section>.<key>`` (key-level) or ``params.<section>`` (the whole section), where
``params`` is a name bound to a :class:`pipeline.core.params.Params` (by that name, from
``load_params(...)``, or annotated ``Params``), or imports a section dataclass such as
``FusionParams`` (the module receives that section: the whole section). The analysis is per module,
so it over-approximates (a module's reads count for every stage that imports it), never misses.
The same checks run on a doctored copy of the project to show they fail.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipeline.core.params import Params, ParamsError, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "stages", "fusion", "rjcma")
SECTIONS = {f.name for f in dataclasses.fields(Params)}
ALL_SECTIONS_CALLS = {"to_dict", "asdict"}  # to_dict(params) serialises every section
CMD_MODULE = re.compile(r"python -m (stages\.\w+)")


# ---------------------------------------------------------------------------------------------
# Static analysis of the project's modules
# ---------------------------------------------------------------------------------------------

@functools.cache
def _parse_source(text: str, filename: str) -> ast.Module:
    return ast.parse(text, filename)


def parse(path: Path) -> ast.Module:
    """The syntax tree of a file (parsed once per distinct content)."""
    return _parse_source(path.read_text(), str(path))


def module_path(module: str, root: Path) -> Path | None:
    """``pipeline.core.layout`` -> ``<root>/pipeline/layout.py`` (or the package's __init__.py)."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imported_modules(path: Path, root: Path) -> set[str]:
    """Project modules imported anywhere in ``path`` (top level or inside functions)."""
    package = list(path.relative_to(root).parts[:-1])
    found: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            for alias in node.names:  # `from pipeline import layout` imports a module
                found.add(f"{mod}.{alias.name}")
    return {m for m in found if module_path(m, root) is not None}


def has_code(path: Path) -> bool:
    """Whether a file holds more than a docstring (an empty package __init__ is no dependency)."""
    body = parse(path).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def module_closure(module: str, root: Path) -> set[Path]:
    """Files of ``module`` and of every project module it imports, transitively, with the
    non-empty ``__init__.py`` of their packages (Python runs those on import)."""
    seen: set[str] = set()
    todo = [module]
    files: set[Path] = set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        path = module_path(mod, root)
        assert path is not None, f"{mod}: no such project module under {root}"
        if path.name != "__init__.py" or has_code(path):
            files.add(path)
        parts = mod.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        todo.extend(imported_modules(path, root))
    return files


PARAMS_ANNOTATIONS = {"Params", "params.Params", "pipeline.core.params.Params"}
MODULE_LEVEL = ""  # the unit name of a module's top-level statements


def _call_name(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def _scope_holders(fn: ast.AST, outer: set[str]) -> set[str]:
    """Params holders inside function ``fn``: its arguments annotated ``Params`` or named
    ``params`` without an annotation; an argument annotated otherwise (``params: AudioParams``)
    shadows an outer holder of the same name."""
    holders = set(outer)
    args = fn.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is None:
            continue
        ann = ast.unparse(arg.annotation).strip("'\"") if arg.annotation is not None else None
        if ann in PARAMS_ANNOTATIONS or (ann is None and arg.arg == "params"):
            holders.add(arg.arg)
        else:
            holders.discard(arg.arg)
    return holders


def params_read(node: ast.AST) -> set[str]:
    """Params a piece of code reads: ``"section"`` (whole section) or ``"section.key"``.

    A Params holder is a name bound by ``x = load_params(...)``, annotated ``Params``, or called
    ``params`` (the project's convention), per function scope; ``<holder>.<section>.<key>`` is a key
    read, any other use of ``<holder>.<section>`` (e.g. passing the section on) a whole-section
    read, and ``to_dict(<holder>)`` reads every section.
    """
    reads: set[str] = set()

    def is_holder(node: ast.AST, holders: set[str]) -> bool:
        if isinstance(node, ast.Name):
            return node.id in holders
        return isinstance(node, ast.Attribute) and node.attr == "params" and not (
            isinstance(node.value, ast.Name) and node.value.id == "args")  # args.params is a path

    def visit(node: ast.AST, holders: set[str]) -> None:  # holders: the names in scope
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, _scope_holders(child, holders))
                continue
            if (isinstance(child, ast.Attribute) and child.attr in SECTIONS
                    and is_holder(child.value, holders)):
                if isinstance(node, ast.Attribute) and node.value is child:
                    reads.add(f"{child.attr}.{node.attr}")
                else:
                    reads.add(child.attr)
            elif isinstance(child, ast.Call) and _call_name(child) in ALL_SECTIONS_CALLS:
                if any(is_holder(a, holders) for a in child.args):
                    reads.update(SECTIONS)
            elif isinstance(child, (ast.Assign, ast.AnnAssign)):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                value = child.value
                ann = ast.unparse(child.annotation) if isinstance(child, ast.AnnAssign) else ""
                if (isinstance(value, ast.Call) and _call_name(value) in ("load_params", "params_from_dict")
                        or ann.strip("'\"") in PARAMS_ANNOTATIONS):
                    holders |= names
            visit(child, holders)

    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        visit(ast.Module(body=[node], type_ignores=[]), {"params"})
    else:
        visit(node, {"params"})
    return reads


@dataclass
class ModuleInfo:
    """A project module split into units: each top-level def/class, and its top-level statements."""

    name: str
    units: dict[str, ast.AST]  # def/class name (or MODULE_LEVEL) -> code
    bindings: dict[str, tuple[str, str | None]]  # imported name -> (module, attribute or None)


def _absolute(module: str | None, level: int, package: list[str]) -> str:
    if not level:
        return module or ""
    base = package[: len(package) - level + 1]
    return ".".join(base + ([module] if module else []))


def module_info(module: str, root: Path) -> ModuleInfo:
    path = module_path(module, root)
    assert path is not None, f"{module}: no such project module under {root}"
    tree = parse(path)
    package = list(path.relative_to(root).parts[:-1])
    units: dict[str, ast.AST] = {}
    top = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            units[stmt.name] = stmt
        else:
            top.append(stmt)
    units[MODULE_LEVEL] = ast.Module(body=top, type_ignores=[])
    bindings: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):  # imports inside functions bind module-wide (good enough)
        if isinstance(node, ast.Import):
            for a in node.names:
                bindings[a.asname or a.name.split(".")[0]] = (a.name if a.asname else a.name.split(".")[0],
                                                              None)
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(node.module, node.level, package)
            for a in node.names:
                sub = f"{mod}.{a.name}"
                bindings[a.asname or a.name] = (sub, None) if module_path(sub, root) else (mod, a.name)
    return ModuleInfo(module, units, bindings)


def _resolve(info: ModuleInfo, node: ast.AST, root: Path) -> tuple[str, str | None] | None:
    """The project (module, name) that ``node`` (a Name or a dotted Attribute chain) refers to."""
    chain = []
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    chain.reverse()
    if node.id in info.bindings:
        mod, attr = info.bindings[node.id]
    elif node.id in info.units:
        mod, attr = info.name, node.id
    else:
        return None
    while attr is None and chain:  # module.submodule.function
        head = chain.pop(0)
        if module_path(f"{mod}.{head}", root):
            mod = f"{mod}.{head}"
        else:
            attr = head
    return (mod, attr) if module_path(mod, root) else None


def reachable_reads(module: str, root: Path) -> set[str]:
    """Params read by the code a stage module can run: all of the stage module, and in the project
    modules it uses, each module's top-level code and the functions/classes it refers to."""
    infos: dict[str, ModuleInfo] = {}
    seen: set[tuple[str, str]] = set()
    start = module_info(module, root)
    todo = [(module, unit) for unit in start.units]
    reads: set[str] = set()
    while todo:
        mod, unit = todo.pop()
        if (mod, unit) in seen:
            continue
        seen.add((mod, unit))
        info = infos.setdefault(mod, module_info(mod, root))
        if unit != MODULE_LEVEL and unit not in info.units:
            if unit in info.bindings:  # a name the module re-exports from another one
                target = info.bindings[unit]
                todo.append((target[0], target[1] or MODULE_LEVEL))
            todo.append((mod, MODULE_LEVEL))
            continue
        code = info.units[unit]
        reads |= params_read(code)
        todo.append((mod, MODULE_LEVEL))
        for node in ast.walk(code):
            if isinstance(node, (ast.Name, ast.Attribute)):
                ref = _resolve(info, node, root)
                if ref is not None:
                    todo.append((ref[0], ref[1] or MODULE_LEVEL))
    return reads


def normalise(reads: set[str]) -> set[str]:
    """A whole-section read subsumes that section's key reads."""
    whole = {r for r in reads if "." not in r}
    return whole | {r for r in reads if r.split(".")[0] not in whole}


# ---------------------------------------------------------------------------------------------
# dvc.yaml
# ---------------------------------------------------------------------------------------------

def load_stages(root: Path) -> dict[str, dict]:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def declared_params(stage: dict) -> set[str]:
    out: set[str] = set()
    for item in stage.get("params", []):
        assert isinstance(item, str), f"params from another file are not expected: {item!r}"
        out.add(item)
    return out


def stage_module(name: str, stage: dict) -> str:
    m = CMD_MODULE.search(stage["cmd"])
    assert m, f"stage {name}: cmd {stage['cmd']!r} does not run `python -m stages.<name>`"
    return m.group(1)


def check_stage(name: str, stage: dict, root: Path) -> list[str]:
    """Every problem of one stage's declared code deps and params, as readable lines."""
    problems = []
    files = module_closure(stage_module(name, stage), root)
    code = {p.relative_to(root).as_posix() for p in files}
    deps = {d for d in stage.get("deps", []) if d.endswith(".py")}
    if missing := sorted(code - deps):
        problems.append(f"stage {name}: code it imports is not in deps: {missing}")
    if extra := sorted(deps - code):
        problems.append(f"stage {name}: deps list code it never imports: {extra}")
    reads = normalise(reachable_reads(stage_module(name, stage), root))
    declared = declared_params(stage)
    if missing := sorted(reads - declared):
        problems.append(f"stage {name}: params its code reads are not declared: {missing}")
    if extra := sorted(declared - reads):
        problems.append(f"stage {name}: declared params its code never reads: {extra}")
    return problems


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
        for dep in data_deps:  # never a whole manifest or another shard's folder
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


if __name__ == "__main__":  # `python -m tests.test_dvc_yaml`: what each stage should declare
    for name, stage in STAGES.items():
        try:
            code = module_closure(stage_module(name, stage), ROOT)
        except AssertionError as e:
            print(f"{name}: {e}")
            continue
        print(f"{name}:\n  deps (code):")
        print("\n".join(f"    - {p.relative_to(ROOT).as_posix()}" for p in sorted(code)))
        reads = normalise(reachable_reads(stage_module(name, stage), ROOT))
        print("  params:\n" + "\n".join(f"    - {r}" for r in sorted(reads)))
