"""Which project code and params each DVC stage depends on, found by reading the source.

``python -m stages.deps`` prints, for every stage of dvc.yaml, the code files it runs and the params
it reads (what its ``deps:`` and ``params:`` should list); tests/test_dvc_yaml.py fails when dvc.yaml
says otherwise, and tests/test_layering.py walks the same imports for the layering rules.

A stage's code is the module it runs (``python -m stages.<name>``) and every project module that one
imports (transitively, found by parsing the source, imports inside functions included), with the
non-empty ``__init__.py`` of their packages. A param is "read" when the code accesses
``params.<section>.<key>`` (key-level) or ``params.<section>`` (the whole section), where ``params``
is a name bound to a :class:`pipeline.core.params.Params` (by that name, from ``load_params(...)``,
or annotated ``Params``), or imports a section dataclass such as ``FusionParams`` (the module
receives that section: the whole section). The analysis is per module, so it over-approximates (a
module's reads count for every stage that imports it), never misses.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.core import layout
from pipeline.core.params import Params

ROOT = Path(__file__).resolve().parents[1]  # the project root
PACKAGES = ("pipeline", "stages", "fusion", "rjcma")
SECTIONS = {f.name for f in dataclasses.fields(Params)}
ALL_SECTIONS_CALLS = {"to_dict", "asdict"}  # to_dict(params) serialises every section
CMD_MODULE = re.compile(r"python -m (stages\.\w+)")
# params that name a file in conf/lists (pipeline/dataset/lists.py): DVC has no optional file
# dependency, so a stage reading one depends on the whole folder (which always exists)
LIST_PARAMS = ("data.trial_order", "report.submission_list")
LISTS_DIR = layout.LISTS.as_posix()


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
    """``pipeline.core.layout`` -> ``<root>/pipeline/core/layout.py`` (or the package's __init__.py)."""
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


def project_modules(root: Path) -> dict[str, Path]:
    """Every module of the project's packages: dotted name -> file (a package is its __init__)."""
    mods = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its source), for every module."""
    return {mod: imported_modules(path, root) for mod, path in project_modules(root).items()}


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
    lists = sorted(k for k in LIST_PARAMS if k in reads or k.split(".")[0] in reads)
    if lists and LISTS_DIR not in stage.get("deps", []):
        problems.append(f"stage {name}: reads {lists} (files in {LISTS_DIR}) without {LISTS_DIR} in deps")
    return problems


def stage_report(root: Path = ROOT) -> str:
    """What each stage of ``<root>/dvc.yaml`` should declare, as YAML-like text."""
    lines = []
    for name, stage in load_stages(root).items():
        try:
            code = module_closure(stage_module(name, stage), root)
        except AssertionError as e:
            lines.append(f"{name}: {e}")
            continue
        lines.append(f"{name}:\n  deps (code):")
        lines += [f"    - {p.relative_to(root).as_posix()}" for p in sorted(code)]
        reads = normalise(reachable_reads(stage_module(name, stage), root))
        lines.append("  params:")
        lines += [f"    - {r}" for r in sorted(reads)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m stages.deps",
                                description="Print the code files and params each dvc.yaml stage "
                                            "reads (what its deps: and params: should list).")
    p.add_argument("--root", type=Path, default=ROOT, help="project root (default: this checkout)")
    args = p.parse_args(argv)
    print(stage_report(args.root))
    problems = [line for name, stage in load_stages(args.root).items()
                for line in check_stage(name, stage, args.root)]
    for line in problems:
        print(f"MISMATCH {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
