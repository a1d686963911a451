"""What the deployed code reads, derived from its source (ast), and the rule that each read has a home.

A read is an environment variable (`os.environ.get("X")`, `environ["X"]`, `os.getenv("X")`, `"X" in
environ`, or a helper called with `environ` and the name, `_int_setting(environ, "X", 1)`), or a runtime
setting's name (`RuntimeSetting("name", ...)`). A key the code computes from a resource spec
(`environ[queue.env_var]`) stands for every spec's value of that attribute; any other computed key cannot be
known from the source and is itself a problem.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What ships to Lambda (DESIGN §2): the app module and the chalicelib package.
DEPLOYED = ("app.py", "chalicelib")


@dataclass(frozen=True, order=True)
class Read:
    kind: str  # "env", "config" or "dynamic"
    name: str
    where: str  # file:line


def _is_environ(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "environ"
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _key(
    node: ast.AST, where: str, spec_values: Mapping[str, Iterable[str]], params: frozenset[str]
) -> list[Read]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [Read("env", node.value, where)]
    if isinstance(node, ast.Name) and node.id in params:
        return []  # a helper's parameter: its callers pass the name with `environ` (read at the call)
    if isinstance(node, ast.Attribute) and node.attr in spec_values:
        return [Read("env", value, where) for value in spec_values[node.attr]]
    return [Read("dynamic", ast.unparse(node), where)]


def reads_in(source: str, filename: str, spec_values: Mapping[str, Iterable[str]]) -> set[Read]:
    """Every environment variable and runtime setting the source reads."""
    found: set[Read] = set()
    for node, params in _nodes(ast.parse(source, filename), frozenset()):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            found.update(_key(node.slice, where, spec_values, params))
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            found.update(_key(node.left, where, spec_values, params))
        elif isinstance(node, ast.Call):
            func = node.func
            method = func.attr if isinstance(func, ast.Attribute) else None
            if (method in ("get", "pop") and _is_environ(func.value)) or method == "getenv":  # type: ignore[attr-defined]
                found.update(_key(node.args[0], where, spec_values, params))
            elif isinstance(func, ast.Name) and func.id == "RuntimeSetting" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(Read("config", first.value, where))
                else:
                    found.add(Read("dynamic", ast.unparse(first), where))
            elif any(_is_environ(a) for a in node.args):
                found.update(
                    Read("env", a.value, where)
                    for a in node.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)
                )
    return found


def _nodes(node: ast.AST, params: frozenset[str]) -> Iterable[tuple[ast.AST, frozenset[str]]]:
    """Every node with the parameter names of the functions around it."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        args = node.args
        params |= {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    yield node, params
    for child in ast.iter_child_nodes(node):
        yield from _nodes(child, params)


def resource_spec_values() -> dict[str, list[str]]:
    """What `<spec>.env_var` and `<spec>.dlq_env_var` can be: every resource spec's value."""
    from chalicelib import resources

    specs = [resources.TABLE, *resources.QUEUES, *resources.STATE_MACHINES, *resources.SECRETS]
    return {
        "env_var": [spec.env_var for spec in specs],
        "dlq_env_var": [queue.dlq_env_var for queue in resources.QUEUES],
    }


def deployed_reads(root: Path = ROOT) -> set[Read]:
    """Everything the deployed code (app.py and chalicelib/) reads."""
    spec_values = resource_spec_values()
    found: set[Read] = set()
    for entry in DEPLOYED:
        path = root / entry
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            found |= reads_in(file.read_text(), str(file.relative_to(root)), spec_values)
    return found


def unhomed(reads: Iterable[Read], homes: Mapping[str, str]) -> list[str]:
    """The problems: a read without a home, a runtime setting not homed `config`, a key not knowable."""
    problems = []
    for read in sorted(reads):
        home = homes.get(read.name)
        if read.kind == "dynamic":
            problems.append(f"{read.where}: reads a setting whose name the source does not show: {read.name}")
        elif home is None:
            problems.append(f"{read.where}: {read.name} has no home in chalicelib.settings.SETTINGS")
        elif (read.kind == "config") != (home == "config"):
            problems.append(f"{read.where}: {read.name} is read as {read.kind} but homed {home!r}")
    return problems


def names(reads: Iterable[Read], *, kind: str) -> set[str]:
    return {r.name for r in reads if r.kind == kind}
